"""Simulator connections: each gets its own in-memory simulated platform in each process (a
simulation run binds the platform it drives instead, see ``qunyun.connectors.registry.bind``)."""

from __future__ import annotations

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.simulator.client import SimulatorConnector


def build(config: ConnectionConfig) -> SimulatorConnector:
    seed = config.settings.get("seed", 0)
    return SimulatorConnector(seed=seed if isinstance(seed, int) else 0, namespace=f"sim{config.id}")
