"""Onboarding (M4): what happens when a member joins."""
