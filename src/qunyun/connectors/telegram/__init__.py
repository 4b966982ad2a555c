"""Telegram groups through the Bot API: the capability profile (``capabilities.PROFILE``), the
webhook verifier (``verification``), update normalization (``updates``), the connector
(``client``), its factory and check (``factory``) and long polling (``polling``)."""

from qunyun.connectors.telegram.capabilities import PROFILE

__all__ = ["PROFILE"]
