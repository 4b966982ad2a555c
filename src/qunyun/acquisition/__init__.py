"""Acquisition: channels and their cost models (M3)."""
