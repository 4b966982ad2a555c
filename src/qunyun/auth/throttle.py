"""Slow down password guessing: failed logins are counted per username and per client address.

The counters live in process memory. That is enough for one `qunyun serve` process; with several
processes behind a balancer each keeps its own counts, so the effective limit multiplies by the
process count (documented in docs/access-control.md). A shared store can replace this class later.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from qunyun.errors import QunyunError


class TooManyAttempts(QunyunError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds", retry_after=retry_after)
        self.retry_after = retry_after


@dataclass
class LoginThrottle:
    """After ``max_per_user`` failures for one username (or ``max_per_ip`` from one address)
    within ``window``, further attempts are refused until the oldest failure ages out."""

    max_per_user: int = 5
    max_per_ip: int = 30
    window: timedelta = timedelta(minutes=15)
    max_keys: int = 100_000
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, username: str, ip: str | None) -> list[tuple[str, int]]:
        keys = [(f"user:{username.strip().lower()}", self.max_per_user)]
        if ip:
            keys.append((f"ip:{ip}", self.max_per_ip))
        return keys

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def check(self, username: str, ip: str | None, now: datetime) -> None:
        """Raise TooManyAttempts while ``username`` or ``ip`` is locked out."""
        with self._lock:
            for key, limit in self._keys(username, ip):
                failures = self._recent(key, now)
                if len(failures) >= limit:
                    wait = self.window - (now - failures[0])
                    raise TooManyAttempts(max(1, int(wait.total_seconds()) + 1))

    def failed(self, username: str, ip: str | None, now: datetime) -> None:
        with self._lock:
            if len(self._failures) >= self.max_keys:
                # Bounded memory under a spray of usernames: forget the stalest keys.
                for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[: self.max_keys // 10]:
                    del self._failures[key]
            for key, _limit in self._keys(username, ip):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        """A correct password clears the username's count (not the address's)."""
        with self._lock:
            self._failures.pop(f"user:{username.strip().lower()}", None)
