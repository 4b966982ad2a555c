"""Render metric rows as JSON, CSV or a terminal table."""

from __future__ import annotations

import csv
from typing import Any, TextIO

import orjson


def render_rows(rows: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(orjson.dumps(rows).decode())
        out.write("\n")
        return
    fields = list(rows[0]) if rows else []
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            writer.writerow("" if row[f] is None else row[f] for f in fields)
        return
    from rich.console import Console  # only the table format needs it
    from rich.table import Table

    table = Table(*fields, show_lines=False)
    for row in rows:
        table.add_row(*("" if row[f] is None else str(row[f]) for f in fields))
    Console(file=out, width=max(120, 14 * len(fields))).print(table)
