"""Pause the cyclic garbage collector around bulk work.

Building millions of short-lived containers (an import, a 450,000-row report) makes CPython run
its cycle collector over and over, though none of these objects form cycles. Reference counting
still frees them; only the cycle search is paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
