"""Members, persona fields and tags (M10)."""
