"""matrix connector state (tables owned by qunyun.connectors.matrix)."""
