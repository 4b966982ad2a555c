"""Telegram groups through the Bot API. For now only the declared capability profile exists
(``capabilities.PROFILE``); the client and update handling come in a later issue."""

from qunyun.connectors.telegram.capabilities import PROFILE

__all__ = ["PROFILE"]
