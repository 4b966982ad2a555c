"""The server-rendered web console: page routes (``pages/``), templates, static assets, charts."""
