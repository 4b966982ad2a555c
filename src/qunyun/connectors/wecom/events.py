"""WeCom callbacks (decrypted XML, as ``crypto.parse_xml`` makes them) into interchange v1 events.

What a callback alone says becomes events at once:

- ``change_external_chat`` / ``update`` / ``add_member``: a ``member.joined`` per MemChangeList
  member, with the scene of JoinScene (0: invited by a member, directly or through an invite
  link; 3: by scanning the group's QR code; 1 is read as a link should WeCom ever send it —
  groupchat/get numbers its ``join_scene`` 1 direct, 2 link, 3 QR: ``sync.SCENES``);
- ``del_member``: a ``member.left`` per member, ``reason`` ``removed`` when QuitScene is 1 (the
  owner or an admin removed them), else ``left``;
- the other changes (create, change_owner, change_name, change_notice, dismiss) and tags
  (``change_external_tag``) carry no membership: they yield no event here and are applied by the
  callback sync job (``sync.process_callbacks``), which also calls groupchat/get for names,
  inviters and the join way's state; contacts (``change_external_contact``) are no group
  membership either: ``contacts.apply_contact_callback`` records them.

Optional fields are read leniently (real payloads differ from older docs): a missing or
non-numeric scene is no scene, an empty MemChangeList no event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

JOIN_SCENES = {"0": "invite", "1": "link", "3": "qr"}
REMOVED_SCENE = "1"


def event_id(*parts: str) -> str:
    """A stable interchange id (≤128 characters) for what the parts name."""
    return "wx:" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


def instant(value: Any) -> str:
    """CreateTime (Unix seconds) as ISO 8601 UTC; now when it is missing or not a number."""
    text = str(value or "").strip()
    moment = datetime.fromtimestamp(int(text), UTC) if text.isdigit() and len(text) <= 12 else datetime.now(UTC)
    return moment.isoformat()


def members_of(payload: Mapping[str, Any]) -> list[str]:
    """The MemChangeList members (a list, one text, or nothing)."""
    value = payload.get("MemChangeList")
    if isinstance(value, list):
        return [v for v in (str(x).strip() for x in value) if v]
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    return []


def is_chat_change(payload: Mapping[str, Any]) -> bool:
    return payload.get("MsgType") == "event" and payload.get("Event") == "change_external_chat"


def normalize(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The interchange events one decrypted callback carries by itself (maybe none)."""
    if not is_chat_change(payload):
        return []
    chat_id = str(payload.get("ChatId") or "").strip()
    if not chat_id or payload.get("ChangeType") != "update":
        return []
    detail = payload.get("UpdateDetail")
    ts = instant(payload.get("CreateTime"))
    version = str(payload.get("CurMemVer") or payload.get("CreateTime") or "")
    events: list[dict[str, Any]] = []
    if detail == "add_member":
        scene = JOIN_SCENES.get(str(payload.get("JoinScene", "")).strip())
        for member in members_of(payload):
            event: dict[str, Any] = {
                "id": event_id(chat_id, version, "join", member),
                "ts": ts,
                "kind": "member.joined",
                "group": chat_id,
                "member": member,
            }
            if scene is not None:
                event["scene"] = scene
            events.append(event)
    elif detail == "del_member":
        removed = str(payload.get("QuitScene", "")).strip() == REMOVED_SCENE
        for member in members_of(payload):
            events.append(
                {
                    "id": event_id(chat_id, version, "leave", member),
                    "ts": ts,
                    "kind": "member.left",
                    "group": chat_id,
                    "member": member,
                    "reason": "removed" if removed else "left",
                }
            )
    return events
