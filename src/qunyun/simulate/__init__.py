"""The synthetic community: an agent-based simulation of members, channels, posting rhythm,
churn and orders that drives the real ingestion pipeline through the simulator connector.
Used by ``qunyun simulate``, ``qunyun demo``, the tests and the benchmarks (docs/simulator.md)."""
