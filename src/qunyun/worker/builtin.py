"""Importing this registers every domain's job handlers and periodic jobs in the worker.

The list of domain modules is ``qunyun.modules.DOMAIN_MODULES``: add a domain's module there.
"""

from __future__ import annotations

from qunyun.modules import load_domain_modules

load_domain_modules()
