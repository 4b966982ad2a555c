"""Action kinds: Room administration: inviting a member and other actions a Matrix room needs (platform-neutral).

Imported at the end of ``qunyun.connectors.actions`` so the registry holds every kind."""

from __future__ import annotations
