"""Action kinds for entry and membership administration: join requests, bans, the group
description (platform-neutral; first used by Telegram).

Imported at the end of ``qunyun.connectors.actions`` so the registry holds every kind."""

from __future__ import annotations
