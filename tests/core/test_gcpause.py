"""Pausing the cycle collector is for bulk work on the main thread (the CLI); a request thread of
the server must leave the process-wide collector alone."""

from __future__ import annotations

import gc
import threading

from qunyun.gcpause import gc_paused


def test_the_main_thread_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_worker_thread_leaves_the_collector_running() -> None:
    seen: list[bool] = []

    def work() -> None:
        with gc_paused():
            seen.append(gc.isenabled())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [True] and gc.isenabled()
