"""A connection's rate budgets hold across processes when they live in Redis: several worker
processes sending to one Telegram group stay within the group's 20 messages a minute together, and
a 429 seen by one holds the others back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qunyun.config import get_settings
from qunyun.connectors.pace import LocalWindows, RedisWindows, Windows, shared_windows
from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.telegram import factory
from qunyun.connectors.telegram.botapi import RateLimited
from qunyun.connectors.telegram.client import Limiter

REDIS_URL = os.environ.get("QUNYUN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL} (.ci/run starts one; QUNYUN_TEST_REDIS_URL points elsewhere)")
    yield REDIS_URL
    client.close()


@pytest.fixture(params=["local", "redis"])
def windows(request: pytest.FixtureRequest) -> Windows:
    if request.param == "local":
        return LocalWindows()
    url = request.getfixturevalue("redis_url")
    return shared_windows(url)


def test_a_window_holds_its_limit_and_frees_a_slot_in_time(windows: Windows) -> None:
    key = f"test:{uuid.uuid4().hex}"
    assert [windows.take(key, 3, 0.5) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = windows.take(key, 3, 0.5)
    assert 0 < wait <= 0.5
    assert windows.take(f"{key}:other", 3, 0.5) == 0.0  # another key has its own window
    time.sleep(wait + 0.02)
    assert windows.take(key, 3, 0.5) == 0.0


def test_a_block_holds_until_it_ends_or_is_lifted(windows: Windows) -> None:
    key = f"test:{uuid.uuid4().hex}"
    assert windows.blocked(key) == 0
    windows.block(key, 30)
    windows.block(key, 1)  # a shorter block does not shorten it
    assert 29 < windows.blocked(key) <= 30
    windows.unblock(key)
    assert windows.blocked(key) == 0


def test_lifting_a_block_within_a_margin_leaves_a_longer_one(windows: Windows) -> None:
    key = f"test:{uuid.uuid4().hex}"
    windows.block(key, 30)
    windows.unblock(key, within=0.5)  # more than half a second left: set by someone else, it stands
    assert windows.blocked(key) > 29
    windows.unblock(key)
    windows.block(key, 0.2)
    windows.unblock(key, within=0.5)
    assert windows.blocked(key) == 0


SENDER = """
import sys
from qunyun.connectors.pace import shared_windows
from qunyun.connectors.telegram.client import Limiter
from tests.connectors.test_pace import sends

url, prefix, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(sends(Limiter(windows=shared_windows(url), prefix=prefix), tries))
"""


def sends(limiter: Limiter, tries: int) -> int:
    """How many of ``tries`` sends to one group ``limiter`` lets through."""
    sent = 0
    for _ in range(tries):
        try:
            limiter.before_call("-1001", send=True)
        except RateLimited:
            continue
        sent += 1
    return sent


def test_worker_processes_share_a_groups_twenty_a_minute(redis_url: str) -> None:
    prefix = f"telegram:test{uuid.uuid4().hex}:"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    procs = [
        subprocess.Popen([sys.executable, "-c", SENDER, redis_url, prefix, "12"], stdout=subprocess.PIPE, env=env)
        for _ in range(3)
    ]
    sent = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(sent) == 20  # 36 tried by three processes: Telegram's 20 a minute for the group
    with pytest.raises(RateLimited) as refused:
        Limiter(windows=shared_windows(redis_url), prefix=prefix).before_call("-1001", send=True)
    assert 50 < refused.value.retry_after <= 60
    # Without Redis each process would have its own budget: the same three send 36.
    local = [Limiter(windows=LocalWindows(), prefix=prefix) for _ in range(3)]
    assert sum(sends(limiter, 12) for limiter in local) == 36


def test_telegram_connections_share_the_bots_budget_through_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two connectors of one bot (two processes' connectors of a connection) built by the factory
    with QUNYUN_REDIS_URL set: a 429 one of them met holds the other back; without it, they do not
    share."""
    bot = str(900_000_000 + uuid.uuid4().int % 99_999_999)
    config = ConnectionConfig(
        id=1, org_id=1, platform="telegram", name="bot", settings={}, secrets={"bot_token": f"{bot}:secret"}
    )
    monkeypatch.setenv("QUNYUN_REDIS_URL", redis_url)
    get_settings.cache_clear()
    first, second = factory.build(config), factory.build(config)
    try:
        assert isinstance(first.limiter.windows, RedisWindows)
        first.limiter.block(20)
        with pytest.raises(RateLimited) as held:
            second.limiter.before_call(None, send=False)
        assert 15 < held.value.retry_after <= 20
        first.limiter.unblock()
        second.limiter.before_call(None, send=False)
    finally:
        first.api.close()
        second.api.close()

    monkeypatch.delenv("QUNYUN_REDIS_URL")
    get_settings.cache_clear()
    alone, other = factory.build(config), factory.build(config)
    try:
        assert isinstance(alone.limiter.windows, LocalWindows)
        alone.limiter.block(20)
        other.limiter.before_call(None, send=False)  # its own process's budget: not held
    finally:
        alone.api.close()
        other.api.close()
        get_settings.cache_clear()


def test_an_unreachable_redis_falls_back_to_the_process_budget() -> None:
    windows = shared_windows("redis://127.0.0.1:1/0")
    key = f"test:{uuid.uuid4().hex}"
    assert [windows.take(key, 2, 60) for _ in range(2)] == [0.0, 0.0]
    assert windows.take(key, 2, 60) > 0  # still limited, by this process's own window
    windows.block(key + ":b", 5)
    assert windows.blocked(key + ":b") > 0


def test_wecom_clients_of_one_corp_share_each_apis_rate(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The corp's per-API rate holds across its clients (each process builds its own) when the
    windows are in Redis: three calls a second in all, not three per client."""
    from qunyun.connectors.wecom.factory import client_for

    corp = f"ww{uuid.uuid4().hex[:16]}"
    config = ConnectionConfig(
        id=1, org_id=1, platform="wecom", name="corp", settings={"corp_id": corp}, secrets={"secret": "s"}
    )
    monkeypatch.setenv("QUNYUN_REDIS_URL", redis_url)
    get_settings.cache_clear()
    clients = [client_for(config), client_for(config)]
    try:
        for client in clients:
            assert isinstance(client.limiter.windows, RedisWindows)
            client.limiter.limits["externalcontact/add_msg_template"] = 3
        started = time.monotonic()
        for n in range(3):
            clients[n % 2].limiter.wait("externalcontact/add_msg_template")
        assert time.monotonic() - started < 0.5
        clients[1].limiter.wait("externalcontact/add_msg_template")  # the fourth in the second
        assert time.monotonic() - started >= 0.9
        clients[0].limiter.wait("gettoken")  # another API has its own window
    finally:
        for client in clients:
            client.close()
        get_settings.cache_clear()


def test_a_redis_that_hangs_costs_one_timeout_then_is_left_alone_for_a_while() -> None:
    """A server that accepts and never answers: the first call waits for the socket timeout and
    falls back; the calls after it do not wait again until DOWN_SECONDS have passed; a block set
    meanwhile holds in this process."""
    import socket

    import redis

    from qunyun.connectors import pace

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # never accepted: connections complete, requests are never answered
    clock = [1000.0]
    port = server.getsockname()[1]
    windows = RedisWindows(
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.3, socket_connect_timeout=0.3),
        clock=lambda: clock[0],
    )
    try:
        started = time.monotonic()
        assert windows.take("k", 5, 60) == 0.0  # by this process's own window
        first = time.monotonic() - started
        assert first >= 0.25
        started = time.monotonic()
        for _ in range(4):
            windows.take("k", 5, 60)
        assert windows.take("k", 5, 60) > 0  # the sixth is over the process's own limit
        windows.block("b", 30)
        assert windows.blocked("b") > 0
        assert time.monotonic() - started < 0.2  # none of them waited for Redis
        clock[0] += pace.DOWN_SECONDS + 1
        started = time.monotonic()
        windows.take("other", 5, 60)
        assert time.monotonic() - started >= 0.25  # Redis is tried again
    finally:
        windows.client.close()
        server.close()
