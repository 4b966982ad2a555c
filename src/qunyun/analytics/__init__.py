"""Data monitoring and review (M11): metrics answered from the ingestion rollups."""
