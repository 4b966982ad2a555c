"""Organisations, staff accounts and their group assignments (M14)."""
