"""``qunyun events import``: a JSON Lines file through the ingestion pipeline, all or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from sqlalchemy.orm import Session

from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput
from qunyun.gcpause import gc_paused
from qunyun.ingestion.parse import EventError, ParsedEvent, parse_line
from qunyun.ingestion.service import Ingestor
from qunyun.locale import Msg
from qunyun.team.service import ensure_organisation

MAX_REPORTED_ERRORS = 20


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    lines: int = 0
    skipped: list[tuple[int, Msg]] = field(default_factory=list)  # (line, reason)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def org_for_import(session: Session, slug: str) -> int:
    """The organisation with ``slug``; created (with defaults) on the first import, also when two
    first imports run at once."""
    return ensure_organisation(session, slug)


def import_stream(
    session: Session,
    org_id: int,
    stream: BinaryIO,
    *,
    skip_invalid: bool = False,
    platform: str = "import",
    batch_size: int = 20000,
    on_progress: object = None,
    connection_id: int | None = None,
) -> ImportReport:
    """Import JSONL from ``stream`` in the caller's transaction.

    Without ``skip_invalid`` the first bad line aborts the import; the rest of the file is still
    read to report up to 20 errors at once, each with its line number and field. Historic
    imports are not live: they trigger no follow-up jobs such as welcome messages. The groups
    it creates belong to ``connection_id`` (None: the organisation's default connection for
    ``platform``).
    """
    report = ImportReport()
    ingestor = Ingestor(session, org_id, platform=platform, source="import", live=False, connection_id=connection_id)
    with gc_paused():
        return _import(ingestor, stream, skip_invalid, batch_size, on_progress, report)


def _import(
    ingestor: Ingestor,
    stream: BinaryIO,
    skip_invalid: bool,
    batch_size: int,
    on_progress: object,
    report: ImportReport,
) -> ImportReport:
    errors: list[tuple[int, Msg]] = []
    batch: list[ParsedEvent] = []
    started = time.perf_counter()
    lines = 0
    for number, line in enumerate(stream, start=1):
        if line.isspace():
            continue  # blank line
        lines += 1
        try:
            event = parse_line(line)
        except EventError as exc:
            if skip_invalid:
                report.skipped.append((number, exc.reason()))
                continue
            errors.append((number, exc.reason()))
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
            continue
        if errors:
            continue  # validating only, to report every error at once
        batch.append(event)
        if len(batch) >= batch_size:
            _flush(ingestor, batch, report)
            batch = []
            report.lines = lines
            if callable(on_progress):
                on_progress(report)
    report.lines = lines
    if errors:
        listing = _joined([Msg("err.event.at_line", line=n, reason=reason) for n, reason in errors])
        message = (
            Msg("err.import.aborted_more", errors=listing, max=MAX_REPORTED_ERRORS)
            if len(errors) >= MAX_REPORTED_ERRORS
            else Msg("err.import.aborted", errors=listing)
        )
        raise InvalidInput(
            message,
            line=errors[0][0],
            errors=[{"line": n, "reason": str(r)} for n, r in errors],
        )
    _flush(ingestor, batch, report)
    ingestor.flush()
    report.seconds = time.perf_counter() - started
    return report


def _joined(messages: list[Msg]) -> Msg:
    """One message listing ``messages`` (at least one), each in the reader's language."""
    joined = messages[-1]
    for message in reversed(messages[:-1]):
        joined = Msg("err.list.join", head=message, tail=joined)
    return joined


def _flush(ingestor: Ingestor, batch: list[ParsedEvent], report: ImportReport) -> None:
    if batch:
        result = ingestor.ingest_batch(batch)
        report.stored += result.stored
        report.duplicates += result.duplicates


def import_file(
    source: str | Path | BinaryIO,
    *,
    org_slug: str = "default",
    skip_invalid: bool = False,
    platform: str = "import",
    batch_size: int = 20000,
    progress: bool = False,
    connection_id: int | None = None,
) -> ImportReport:
    """Import a JSONL file (or binary stream) as one transaction; the groups it creates belong to
    ``connection_id`` (None: the organisation's default connection for ``platform``)."""
    started = time.perf_counter()
    stream: BinaryIO
    size = 0
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(Msg("err.import.no_file", path=str(path)), field="path")
        size = path.stat().st_size
        stream = path.open("rb")
    else:
        stream = source
    try:
        with unit_of_work() as session:
            org_id = org_for_import(session, org_slug)
            with _progress_bar(stream, size, started, shown=progress and size > 0) as tick:
                report = import_stream(
                    session,
                    org_id,
                    stream,
                    skip_invalid=skip_invalid,
                    platform=platform,
                    batch_size=batch_size,
                    on_progress=tick,
                    connection_id=connection_id,
                )
    finally:
        if stream is not source:
            stream.close()
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _progress_bar(
    stream: BinaryIO, size: int, started: float, *, shown: bool
) -> Iterator[Callable[[ImportReport], None] | None]:
    """While the import runs, a bar of the bytes of ``stream`` read out of ``size`` (when
    ``shown``); yields what the import calls with its report as it goes."""
    if not shown:
        yield None
        return
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[events]} events, {task.fields[rate]} events/s"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("import", total=size, events=0, rate=0)

        def tick(report: ImportReport) -> None:
            elapsed = time.perf_counter() - started
            bar.update(
                task,
                completed=stream.tell(),
                events=f"{report.lines:,}",
                rate=f"{report.lines / elapsed:,.0f}" if elapsed else 0,
            )

        yield tick
