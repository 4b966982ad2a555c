"""Moderation (PRODUCT.md M5): evasion-resistant word matching, policies and their rules, the
engine that judges live messages and joins, its actions, decisions, appeals and blacklists."""
