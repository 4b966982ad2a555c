"""Console output of ``qunyun simulate``: a Rich progress bar with events/s, and the summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qunyun.simulate.runner import Progress as ProgressCallback
from qunyun.simulate.runner import SimulationResult


@contextmanager
def progress_bar(*, enabled: bool = True, description: str = "simulating") -> Iterator[ProgressCallback | None]:
    """A progress bar on standard error (simulated days done, events stored, events/s)."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("day {task.fields[day]:>5.1f}"),
        TextColumn("{task.fields[events]:>10,} events"),
        TextColumn("{task.fields[rate]:>8,.0f} events/s"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
    )
    task = bar.add_task(description, total=1, day=0.0, events=0, rate=0.0)
    started = time.perf_counter()

    def update(done: int, total: int, events: int) -> None:
        elapsed = time.perf_counter() - started
        bar.update(
            task,
            completed=done,
            total=total,
            day=done / 86_400,
            events=events,
            rate=events / elapsed if elapsed > 0 else 0.0,
        )

    with bar:
        yield update


def print_summary(result: SimulationResult, slug: str, console: Console | None = None) -> None:
    """The run's figures: wall time, events and events/s, what happened, channels with CAC."""
    console = console or Console()
    totals = Table(title=f"simulation {slug} (seed {result.seed})", show_header=False)
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    rows = [
        ("wall time", f"{result.wall_seconds:.1f} s"),
        ("events", f"{result.events:,}"),
        ("events/s", f"{result.events_per_second:,.0f}"),
        ("members", f"{result.members:,}"),
        ("joins", f"{result.joins:,}"),
        ("leaves", f"{result.leaves:,} ({result.kicks:,} removed)"),
        ("messages", f"{result.messages:,} ({result.ads:,} ads)"),
        ("orders", f"{result.orders:,} ({result.refunds:,} refunds)"),
        ("GMV", f"{result.gmv:,.2f} 元 (refunded {result.refunded:,.2f})"),
        ("jobs run", f"{result.jobs_run:,} ({result.jobs_pending} pending)"),
    ]
    for name, value in rows:
        totals.add_row(name, value)
    console.print(totals)
    channels = Table(title="channels")
    for column in ("channel", "members", "touches", "CAC (元)"):
        channels.add_column(column, justify="left" if column == "channel" else "right")
    for c in result.channels:
        channels.add_row(f"{c.name} ({c.code})", f"{c.members:,}", f"{c.touches:,}", str(c.cac or "—"))
    console.print(channels)
