"""Pause the cyclic garbage collector around bulk work.

Building millions of short-lived containers (an import, a 450,000-row report) makes CPython run
its cycle collector over and over, though none of these objects form cycles. Reference counting
still frees them; only the cycle search is paused.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector for the block, on the main thread only.

    The collector is process-wide: in the server, where requests run in worker threads and
    overlap, pausing it from one would keep it off under a steady load while cyclic garbage piles
    up, and the collection that follows stops every thread, the event loop too, for seconds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
