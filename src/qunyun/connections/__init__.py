"""Connections: an organisation's accounts on platforms (a WeCom corp app, a Telegram bot, a Matrix
account, a simulated platform), with their settings and encrypted secrets. Connectors are built
per connection (``qunyun.connectors.registry``)."""
