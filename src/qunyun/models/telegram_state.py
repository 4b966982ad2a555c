"""telegram connector state (tables owned by qunyun.connectors.telegram)."""
