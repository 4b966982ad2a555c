"""The built-in simulator platform: in-process state on a virtual clock, fully capable (or
emulating another platform's profile). Used by the demo, the tests and the benchmarks."""

from qunyun.connectors.simulator.capabilities import PROFILE
from qunyun.connectors.simulator.client import SimulatorConnector
from qunyun.connectors.simulator.clock import VirtualClock
from qunyun.connectors.simulator.platform import EventSink, SimulatedPlatform, SimulatorError
from qunyun.connectors.simulator.sink import ingest_sink

__all__ = [
    "PROFILE",
    "EventSink",
    "SimulatedPlatform",
    "SimulatorConnector",
    "SimulatorError",
    "VirtualClock",
    "ingest_sink",
]
