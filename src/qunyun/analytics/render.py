"""Render metric rows as JSON, CSV or a terminal table, and keep spreadsheet cells inert."""

from __future__ import annotations

import csv
import re
from typing import Any, TextIO

import orjson

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection");
# tab and carriage return are there because some programs strip them and then see the next one.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def neutralise(value: Any) -> Any:
    """``value`` as a spreadsheet should show it: text that would start a formula gets a single
    quote in front; numbers, negative ones and numeric text like the contract's ``"-12.50"``
    included, stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def render_rows(rows: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    """``qunyun stats`` output: the contract's columns and values; in CSV no text cell a
    spreadsheet would run (a group id is whatever the platform sent)."""
    if fmt == "json":
        out.write(orjson.dumps(rows).decode())
        out.write("\n")
        return
    fields = list(rows[0]) if rows else []
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(neutralise(f) for f in fields)
        for row in rows:
            writer.writerow("" if row[f] is None else neutralise(row[f]) for f in fields)
        return
    from rich.console import Console  # only the table format needs it
    from rich.markup import escape
    from rich.table import Table

    table = Table(*fields, show_lines=False)
    for row in rows:
        # Escaped: a group id like "[bold]x" is text, not terminal markup.
        table.add_row(*("" if row[f] is None else escape(str(row[f])) for f in fields))
    Console(file=out, width=max(120, 14 * len(fields))).print(table)
