"""SOP engine and group calendar (PRODUCT.md M6, M14): plans of steps, their runs per group and
day, executed on time through the connector or by a person, exactly once."""
