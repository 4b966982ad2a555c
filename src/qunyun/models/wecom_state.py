"""wecom connector state (tables owned by qunyun.connectors.wecom)."""
