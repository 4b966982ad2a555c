"""A connection's rate budgets: sliding windows ("at most N calls in T seconds") and blocks
("nothing until"), kept where every caller of the connection sees them.

A platform's limits are per bot or corp, not per process: Telegram allows about 20 messages a
minute in a group and 30 calls a second in all, whichever worker process makes them. With one
process the windows live in it (:class:`LocalWindows`). With several worker processes (and the
server) set ``QUNYUN_REDIS_URL``: the windows live in Redis (:class:`RedisWindows`), one atomic
script per call that reads the server's clock, so the processes share one budget whatever their
clocks. If Redis cannot be reached a call falls back to the process's own windows (logged, without
keys' contents) rather than failing a send: the platform's own 429 remains the backstop.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

log = logging.getLogger(__name__)

PREFIX = "qunyun:pace:"
# After Redis fails, it is not asked again for this long (the process's own windows serve).
DOWN_SECONDS = 10.0


class Windows(Protocol):
    def take(self, key: str, limit: int, seconds: float) -> float:
        """Take a slot in ``key``'s window (at most ``limit`` in ``seconds``): 0 when taken, else
        the seconds until one frees (nothing taken)."""
        ...

    def block(self, key: str, seconds: float) -> None:
        """Nothing under ``key`` for ``seconds`` (a longer block already set stands)."""
        ...

    def blocked(self, key: str) -> float:
        """Seconds left of ``key``'s block (0: none)."""
        ...

    def unblock(self, key: str, within: float | None = None) -> None:
        """Lift ``key``'s block; with ``within``, only if at most that many seconds of it are left
        (a caller lifting the block it waited out leaves a longer one set since by another)."""
        ...


class LocalWindows:
    """The windows of this process (threads share them)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._blocks: dict[str, float] = {}

    def take(self, key: str, limit: int, seconds: float) -> float:
        with self._lock:
            now = self.clock()
            calls = self._calls[key]
            while calls and now - calls[0] >= seconds:
                calls.popleft()
            if len(calls) >= limit:
                return max(seconds - (now - calls[0]), 1e-3)
            calls.append(now)
            return 0.0

    def block(self, key: str, seconds: float) -> None:
        with self._lock:
            self._blocks[key] = max(self._blocks.get(key, 0.0), self.clock() + seconds)

    def blocked(self, key: str) -> float:
        with self._lock:
            return max(self._blocks.get(key, 0.0) - self.clock(), 0.0)

    def unblock(self, key: str, within: float | None = None) -> None:
        with self._lock:
            if within is None or self._blocks.get(key, 0.0) - self.clock() <= within:
                self._blocks.pop(key, None)


# KEYS[1] the window (a sorted set of call times, microseconds on the server's clock);
# ARGV: limit, window (µs), a unique member. Returns 0 when a slot was taken, else µs to wait.
_TAKE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - now, 1000)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 0
"""

# KEYS[1] the block; ARGV[1] its length (ms): set unless a longer one is already set.
_BLOCK = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 0
"""

# KEYS[1] the block; ARGV[1] -1, or the most (ms) that may be left of it for it to be lifted.
_UNBLOCK = """
local within = tonumber(ARGV[1])
if within < 0 or redis.call('PTTL', KEYS[1]) <= within then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisWindows:
    """The windows in Redis, shared by every process that uses the same server. Every block is
    mirrored in this process's own windows, which serve when Redis fails; after a failure Redis is
    left alone for :data:`DOWN_SECONDS` (a server that hangs costs one timeout, not one a call)."""

    def __init__(self, client: Any, prefix: str = PREFIX, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._take = client.register_script(_TAKE)
        self._block = client.register_script(_BLOCK)
        self._unblock = client.register_script(_UNBLOCK)
        self._local = LocalWindows()
        self._down_until = 0.0

    def _redis(self, call: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, result) from Redis, or (False, None) when it failed or is resting after a failure."""
        from redis.exceptions import RedisError

        if self.clock() < self._down_until:
            return False, None
        try:
            return True, call()
        except RedisError as exc:
            if self._down_until == 0.0:
                log.warning("rate windows: Redis unreachable (%s), using this process's own", type(exc).__name__)
            self._down_until = self.clock() + DOWN_SECONDS
            return False, None

    def take(self, key: str, limit: int, seconds: float) -> float:
        ok, micros = self._redis(
            lambda: self._take(keys=[self.prefix + key], args=[limit, int(seconds * 1e6), uuid.uuid4().hex])
        )
        if not ok:
            return self._local.take(key, limit, seconds)
        self._down_until = 0.0
        return int(micros) / 1e6

    def block(self, key: str, seconds: float) -> None:
        self._local.block(key, seconds)
        self._redis(lambda: self._block(keys=[self.prefix + key], args=[max(int(seconds * 1000), 1)]))

    def blocked(self, key: str) -> float:
        ok, left = self._redis(lambda: int(self.client.pttl(self.prefix + key)))
        shared = max(left / 1000, 0.0) if ok else 0.0
        return max(shared, self._local.blocked(key))  # a block set here while Redis was away still holds

    def unblock(self, key: str, within: float | None = None) -> None:
        self._local.unblock(key, within)
        self._redis(
            lambda: self._unblock(keys=[self.prefix + key], args=[-1 if within is None else int(within * 1000)])
        )


@lru_cache(maxsize=4)
def _redis_windows(url: str) -> RedisWindows:
    import redis

    return RedisWindows(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))


def shared_windows(redis_url: str | None = None) -> Windows:
    """Where a new connector keeps its windows: Redis when ``QUNYUN_REDIS_URL`` (or ``redis_url``)
    is set, one client per process; else windows of its own in this process."""
    if redis_url is None:
        from qunyun.config import get_settings

        redis_url = get_settings().redis_url
    return _redis_windows(redis_url) if redis_url else LocalWindows()
