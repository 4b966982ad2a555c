"""The built-in simulator can do everything a connector can, with no confirmation step. It
emulates a narrower platform when given that platform's profile
(``SimulatorConnector(profile=wecom.PROFILE)``): then it refuses what that platform cannot do,
reports only the events that platform reports, and holds sends for confirmation when the profile
says so."""

from qunyun.connectors.base import Capability, PlatformProfile

PROFILE = PlatformProfile(
    platform="simulator",
    title="Simulator",
    # SEND_REQUIRES_CONFIRMATION is a constraint rather than an ability: the simulator sends at once.
    capabilities=frozenset(Capability) - {Capability.SEND_REQUIRES_CONFIRMATION},
    limits={"group_capacity": 500},
)
