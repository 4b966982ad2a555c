"""The few statements whose text differs between SQLite and PostgreSQL.

Written with ``?`` placeholders; ``Dialect.q`` turns them into psycopg's ``%s``. Keep ``%`` and
literal ``?`` out of these strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

SQLITE_IN_CHUNK = 5000


class SqlDialect:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.greatest = "GREATEST" if self.pg else "max"

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def run(self, sql: str, params: Sequence[Any] | list[tuple[Any, ...]] = ()) -> Any:
        return self.conn.exec_driver_sql(self.q(sql), params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query, straight from the driver (for result sets of many rows)."""
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.q(sql), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """executemany on the driver's cursor, inside the connection's transaction.

        Straight to the DB-API: this is the ingestion hot path, and rows may be lists.
        """
        if not rows:
            return 0
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.q(sql), rows)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def copy_in(self, table: str, columns: str, create: str, rows: Iterable[Sequence[Any]]) -> None:
        """PostgreSQL only: load ``rows`` into an emptied temporary table with COPY.

        COPY carries rows several times faster than executemany; an INSERT … SELECT then
        moves them on, with ON CONFLICT and RETURNING, which COPY itself cannot do.
        """
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({create}) ON COMMIT DROP")
            cursor.execute(f"TRUNCATE {table}")
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def select_in(self, template: str, params: tuple[Any, ...], values: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Run ``template`` (containing ``{in}``) for ``values``; yields result rows."""
        if not values:
            return
        if self.pg:
            # Strings go as varchar[]: compared with a text[] the varchar column would be cast
            # and its index ignored.
            cast = "::varchar[]" if isinstance(values[0], str) else ""
            yield from self.run(template.format(in_=f"= ANY(?{cast})"), (*params, list(values))).fetchall()
            return
        for start in range(0, len(values), SQLITE_IN_CHUNK):
            chunk = values[start : start + SQLITE_IN_CHUNK]
            placeholders = ",".join("?" * len(chunk))
            yield from self.run(template.format(in_=f"IN ({placeholders})"), (*params, *chunk)).fetchall()

    def pair_join(self, pairs: Sequence[tuple[int, int]], table: str, condition: str) -> tuple[str, tuple[Any, ...]]:
        """``FROM``-clause body joining ``pairs`` (as ``{a}``, ``{b}``) to ``table`` on ``condition``.

        The pairs drive the join (one index lookup per pair); on SQLite a CROSS JOIN pins
        that order, which its planner would otherwise invert into a scan.
        """
        if self.pg:
            on = condition.format(a="k.a", b="k.b")
            return (
                f"unnest(?::int[], ?::int[]) AS k(a, b) JOIN {table} ON {on} WHERE true",
                ([p[0] for p in pairs], [p[1] for p in pairs]),
            )
        import orjson

        where = condition.format(a="(k.value ->> 0)", b="(k.value ->> 1)")
        return f"json_each(?) AS k CROSS JOIN {table} WHERE {where}", (orjson.dumps(pairs).decode(),)

    def allocate_ids(self, table: str, count: int) -> list[int]:
        """SQLite: reserve ``count`` primary keys of ``table``.

        The caller holds the write lock (BEGIN IMMEDIATE), so max(id)+1… are ours. (On
        PostgreSQL the table's sequence numbers rows as they are inserted.)
        """
        if count == 0:
            return []
        base = self.run(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()
        return list(range(base + 1, base + count + 1))
