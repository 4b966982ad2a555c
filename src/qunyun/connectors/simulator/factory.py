"""Simulator connections: each gets its own in-memory simulated platform in each process (a
simulation run binds the platform it drives instead, see ``qunyun.connectors.registry.bind``)."""

from __future__ import annotations

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.simulator.client import SimulatorConnector


def build(config: ConnectionConfig) -> SimulatorConnector:
    return SimulatorConnector.from_settings(config.settings, namespace=f"sim{config.id}")
