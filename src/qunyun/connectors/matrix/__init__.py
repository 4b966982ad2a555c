"""Matrix rooms through the client-server API. For now only the declared capability profile
exists (``capabilities.PROFILE``); the client comes in a later issue."""

from qunyun.connectors.matrix.capabilities import PROFILE

__all__ = ["PROFILE"]
