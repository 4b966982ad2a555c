"""Ingestion: the one entry point through which every platform event enters qunyun."""
