"""Where the shared real-world data is (``../shared/data/`` beside the checkout): loaded from
there at test time, never copied into the repository.

A checkout elsewhere (a CI clone in a temporary directory) finds it through
``QUNYUN_SHARED_DATA`` or at ``/work/shared/data``; when none of them holds it, the tests that
need it fail and say where they looked.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _candidates() -> list[Path]:
    found = [Path(p) for p in (os.environ.get("QUNYUN_SHARED_DATA"),) if p]
    return [*found, ROOT.parent / "shared" / "data", Path("/work/shared/data")]


def shared_data(name: str) -> Path:
    """The directory ``name`` under the shared data (the first candidate holding it; else the
    first candidate's, which does not exist, so that a test's failure names it)."""
    for base in _candidates():
        if (base / name).is_dir():
            return base / name
    return _candidates()[0] / name


LEXICON = shared_data("sensitive-lexicon")
