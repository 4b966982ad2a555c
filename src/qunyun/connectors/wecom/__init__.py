"""WeCom (企业微信) customer groups: callback crypto and verification, the API client with its
shared token cache, the connector, the sync jobs and a fake server for tests
(docs/connectors/wecom.md)."""

from qunyun.connectors.wecom.capabilities import PROFILE

__all__ = ["PROFILE"]
