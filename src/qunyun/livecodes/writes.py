"""What a batch of scans writes (``lane.py``): the scan and visitor rows, inserted together just
before the batch commits, and the places its first scans take in the groups' counters."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from qunyun.models import LiveCodeGroup, LiveCodeScan, LiveCodeVisitor


class Writes:
    """What a batch of scans writes together, just before it commits (``lane.py``): the scan and
    visitor rows (one statement per table for the whole batch), and places in the groups.

    Places are taken from a group's counter several at a time: the first scan of the batch that
    needs one in a group locks the group's row (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite
    the transaction holds the write lock already), reads ``routed`` and ``scan_limit`` and moves
    ``routed`` by as many places as the batch's remaining scans could need, never past the limit;
    the next scans of the batch use them, and :meth:`flush` gives back those left over. All of it
    is one transaction, so what commits is exactly the places used, and nobody else ever sees
    more: on PostgreSQL the row stays locked until the commit, and every process's batches take
    turns on it. Rows whose id a page needs (the threshold's scan) are inserted at once."""

    def __init__(self) -> None:
        self.scans: list[dict[str, Any]] = []
        self.visitors: list[dict[str, Any]] = []
        # Scans of the batch not served yet, this one included (the lane sets it).
        self.remaining = 1
        self._held: dict[int, int] = {}  # entry id -> places taken and not used yet

    def take_place(self, session: Session, entry_id: int) -> bool:
        """One place in the pool entry's group for this scan, if it has room."""
        held = self._held.get(entry_id, 0)
        if held == 0:
            held = _reserve(session, entry_id, max(self.remaining, 1))
            if held == 0:
                return False
        self._held[entry_id] = held - 1
        return True

    def flush(self, session: Session) -> None:
        connection = session.connection()
        for entry_id, unused in self._held.items():
            if unused:
                connection.execute(_GIVE_BACK, {"entry": entry_id, "unused": unused})
        self._held = {}
        if self.scans:
            connection.execute(_INSERT_SCAN, self.scans)
            self.scans = []
        if self.visitors:
            connection.execute(_INSERT_VISITOR, self.visitors)
            self.visitors = []


_SCANS = cast(Table, LiveCodeScan.__table__)
_VISITORS = cast(Table, LiveCodeVisitor.__table__)
_POOL = cast(Table, LiveCodeGroup.__table__)
_INSERT_SCAN = insert(_SCANS)
INSERT_SCAN_ID = insert(_SCANS).returning(_SCANS.c.id)
_INSERT_VISITOR = insert(_VISITORS)
_LOCK_PLACES = (
    select(_POOL.c.routed, _POOL.c.scan_limit)
    .where(_POOL.c.id == bindparam("entry"), _POOL.c.active.is_(True))
    .with_for_update()
)
_SET_ROUTED = update(_POOL).where(_POOL.c.id == bindparam("entry")).values(routed=bindparam("routed"))
_GIVE_BACK = update(_POOL).where(_POOL.c.id == bindparam("entry")).values(routed=_POOL.c.routed - bindparam("unused"))


# PostgreSQL: the lock, the read and the move in one round trip. ``old`` is the row as locked (the
# latest committed version, after waiting for any other holder), and the new count is computed
# from it, never from an older snapshot of the row.
_RESERVE_PG = text(
    "WITH old AS (SELECT routed FROM live_code_groups WHERE id = :entry AND active FOR UPDATE) "
    "UPDATE live_code_groups AS g SET routed = LEAST(g.scan_limit, old.routed + :wanted) "
    "FROM old WHERE g.id = :entry AND old.routed < g.scan_limit "
    "RETURNING g.routed - old.routed"
)


def _reserve(session: Session, entry_id: int, wanted: int) -> int:
    """Take up to ``wanted`` places in the entry's group (locked until the commit); how many."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        granted = connection.execute(_RESERVE_PG, {"entry": entry_id, "wanted": wanted}).scalar()
        return int(granted or 0)
    row = connection.execute(_LOCK_PLACES, {"entry": entry_id}).first()
    if row is None or row.routed >= row.scan_limit:
        return 0
    granted = min(wanted, row.scan_limit - row.routed)
    connection.execute(_SET_ROUTED, {"entry": entry_id, "routed": row.routed + granted})
    return int(granted)
