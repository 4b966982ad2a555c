"""WeCom (企业微信) customer groups. For now only the declared capability profile exists
(``capabilities.PROFILE``); the client, callback verification and events come in later issues."""

from qunyun.connectors.wecom.capabilities import PROFILE

__all__ = ["PROFILE"]
