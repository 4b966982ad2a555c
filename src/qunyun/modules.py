"""The domain modules: the one list of modules that register job handlers, periodic jobs and
follow-ups of live events when imported.

Every process that runs them loads the same list: each worker (``qunyun.worker.builtin``) and
the ingestor before it hands live events to the follow-ups. A domain that adds handlers or
follow-ups adds its module here, and nowhere else.
"""

from __future__ import annotations

import importlib

DOMAIN_MODULES: tuple[str, ...] = (
    "qunyun.connectors.tasks",
    "qunyun.crm.profiles",
    "qunyun.privacy.tasks",
    "qunyun.tasks.jobs",
    "qunyun.hooks.jobs",
    "qunyun.onboarding.followups",
    "qunyun.acquisition.attribution",
    "qunyun.livecodes.jobs",
    "qunyun.sop.jobs",
    "qunyun.moderation.engine",
    "qunyun.connectors.matrix.sync",
    "qunyun.connectors.wecom.sync",
    "qunyun.connectors.telegram.polling",
)

_loaded = False


def load_domain_modules() -> None:
    """Import every domain module once (registering what it declares); cheap after the first call."""
    global _loaded
    if _loaded:
        return
    for name in DOMAIN_MODULES:
        importlib.import_module(name)
    _loaded = True
