"""The domain task modules whose handlers every worker runs; importing this registers them.

Add a domain's ``tasks`` module here when it defines job handlers or periodic jobs.
"""

from __future__ import annotations

import qunyun.connectors.tasks
import qunyun.crm.profiles
import qunyun.privacy.tasks
import qunyun.tasks.jobs  # noqa: F401  (the imports register handlers)
