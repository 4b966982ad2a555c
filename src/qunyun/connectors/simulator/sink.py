"""Sinks that hand the simulator's events to qunyun's single ingestion entry point."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qunyun.connectors.simulator.platform import EventSink


def ingest_sink(
    session: Session, org_id: int, *, platform: str = "simulator", source: str = "simulator", live: bool = True
) -> EventSink:
    """A sink that ingests each batch into ``session`` (the caller's transaction).

    ``platform`` must be the platform name the simulator is registered under (its profile's), so
    the groups and members it reports are the ones outbound actions address.
    """
    from qunyun.ingestion.service import ingest

    def sink(events: list[dict[str, Any]]) -> None:
        ingest(session, org_id, events, platform=platform, source=source, live=live)

    return sink
