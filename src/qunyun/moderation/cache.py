"""Compiled policies, kept per process and keyed by (policy id, version).

Every edit of a policy bumps its ``version``; the engine reads the versions of its
organisation's policies (one small query, itself kept for a second: :func:`org_policy_rows`)
and compiles only those it has not seen at that version, so a changed word list takes effect in
every process within a second, without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from qunyun.db.base import to_micros
from qunyun.errors import InvalidInput
from qunyun.models import ModerationPolicy
from qunyun.moderation.policy import CompiledPolicy, Policy, policy_from_dict

log = logging.getLogger(__name__)

# Compiled policies kept per process (each holds its matchers: with 100,000 words, tens of MB).
MAX_POLICIES = 64

_lock = threading.Lock()
# policy id → (stamp, compiled); a stamp is (version, updated_at): a database rebuilt from
# scratch (tests) reuses ids and versions, never both with the same time.
Stamp = tuple[int, Any]
_compiled: OrderedDict[int, tuple[Stamp, CompiledPolicy | None]] = OrderedDict()


def stamp_of(row: ModerationPolicy) -> Stamp:
    """(version, updated_at in epoch microseconds): what the engine reads without the ORM."""
    return (row.version, to_micros(row.updated_at))


def stored_dict(row: ModerationPolicy) -> dict[str, Any]:
    """The policy as ``policy_from_dict`` reads it: the settings with the word lists put back."""
    return {**(row.settings or {}), "words": list(row.words or []), "allow": list(row.allow or [])}


def load_policy(row: ModerationPolicy) -> Policy:
    """The stored policy, validated (``InvalidInput`` naming the field if it no longer is)."""
    return policy_from_dict(stored_dict(row))


def compiled_for(row: ModerationPolicy) -> CompiledPolicy | None:
    """The compiled policy of ``row`` at its version, built on first use. None when the stored
    policy no longer validates (logged; the engine then judges nothing with it rather than
    failing the ingest)."""
    with _lock:
        hit = _compiled.get(row.id)
        if hit is not None and hit[0] == stamp_of(row):
            _compiled.move_to_end(row.id)
            return hit[1]
    compiled: CompiledPolicy | None
    try:
        compiled = load_policy(row).compile()
    except InvalidInput as exc:
        log.error("moderation policy %s (version %s) does not load: %s", row.id, row.version, exc)
        compiled = None
    with _lock:
        _compiled[row.id] = (stamp_of(row), compiled)
        _compiled.move_to_end(row.id)
        while len(_compiled) > MAX_POLICIES:
            _compiled.popitem(last=False)
    return compiled


def cached(policy_id: int, stamp: Stamp) -> tuple[bool, CompiledPolicy | None]:
    """(found, compiled) for ``policy_id`` at ``stamp`` without touching the database."""
    with _lock:
        hit = _compiled.get(policy_id)
        if hit is None or hit[0] != stamp:
            return False, None
        _compiled.move_to_end(policy_id)
        return True, hit[1]


def forget(policy_id: int | None = None) -> None:
    """Drop one compiled policy (or all): tests, and a deleted policy."""
    with _lock:
        if policy_id is None:
            _compiled.clear()
        else:
            _compiled.pop(policy_id, None)


# --- the organisations' policy rows ---------------------------------------------------------------
#
# A live batch needs its organisation's enabled policies (id, version, target…) to find each
# group's policy and its compiled form above. They are kept per organisation for ROWS_TTL
# seconds instead of being read at every batch (one round trip less per live message). An edit
# in this process drops them at once (the flush that writes a policy, or a rollback that may undo
# one); another process's edit is seen within ROWS_TTL, since the rows' versions are then read
# again and a new version is compiled as before.
ROWS_TTL = 1.0

_rows: weakref.WeakKeyDictionary[Any, dict[int, tuple[float, list[Any]]]] = weakref.WeakKeyDictionary()


def org_policy_rows(session: Session, org_id: int, load: Callable[[], list[Any]]) -> list[Any]:
    """The organisation's enabled policy rows (``load`` reads them), cached per database and
    organisation for :data:`ROWS_TTL` seconds."""
    bind = session.get_bind()
    now = time.monotonic()
    with _lock:
        hit = _rows.get(bind, {}).get(org_id)
        if hit is not None and hit[0] > now:
            return hit[1]
    rows = load()
    with _lock:
        _rows.setdefault(bind, {})[org_id] = (now + ROWS_TTL, rows)
    return rows


def forget_rows(org_id: int | None = None) -> None:
    """Drop the cached policy rows of one organisation (or all), in every database."""
    with _lock:
        for by_org in _rows.values():
            if org_id is None:
                by_org.clear()
            else:
                by_org.pop(org_id, None)


@event.listens_for(Session, "after_flush")
def _policy_written(session: Session, _context: Any) -> None:
    if not _rows:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, ModerationPolicy):
            forget_rows(obj.org_id)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    # A rolled-back transaction may have written a policy that the cache saw (tests reuse ids).
    if _rows:
        forget_rows()
