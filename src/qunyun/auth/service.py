"""Logging in and out: password check, throttling, token issue and the audit trail."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from qunyun.audit.service import record
from qunyun.auth.address import client_address, throttle_source
from qunyun.auth.passwords import hash_password, verify_password
from qunyun.auth.scope import Scope, visible_group_ids
from qunyun.auth.throttle import LoginsBusy, LoginThrottle
from qunyun.auth.tokens import IssuedToken, TokenKind, issue_token, revoke_token
from qunyun.db.session import get_sessionmaker, unit_of_work
from qunyun.errors import Unauthenticated
from qunyun.locale import Msg
from qunyun.models import AuthToken, Organisation, Staff

log = logging.getLogger(__name__)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 2


# An argon2id check takes 64 MiB and a core for tens of milliseconds. Unbounded, a burst of logins
# would take every core and 64 MiB per request thread (up to 40); so at most half the cores check
# passwords at once, and a login that finds no slot within CHECK_WAIT_SECONDS is 503.
_check_slots = threading.BoundedSemaphore(max(1, _cores() // 2))
CHECK_WAIT_SECONDS = 10.0


@contextmanager
def _check_slot() -> Iterator[None]:
    if not _check_slots.acquire(timeout=CHECK_WAIT_SECONDS):
        raise LoginsBusy()
    try:
        yield
    finally:
        _check_slots.release()


@lru_cache
def _dummy_hash() -> str:
    return hash_password("qunyun-timing-equaliser")


def login(
    *,
    username: str,
    password: str,
    kind: TokenKind,
    throttle: LoginThrottle,
    now: datetime,
    request: HTTPConnection | None = None,
    token_name: str = "",
    lifetime: timedelta | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> IssuedToken:
    """Check the password and issue a session or API token.

    Raises Unauthenticated for a wrong username or password, TooManyAttempts while throttled.
    Runs its own short transactions instead of the request's unit of work: the argon2 check takes
    tens of milliseconds and must not run while holding SQLite's write lock, which would stall
    every other writer behind a loop of failed logins (docs/access-control.md).
    """
    maker = sessions or get_sessionmaker()
    address = client_address(request)
    source = throttle_source(address)
    # Read only: a throttled caller never takes the write lock.
    with unit_of_work(maker, write=False) as s:
        throttle.check(s, username, source, now)
        account = s.execute(
            select(Staff.id, Staff.org_id, Staff.password_hash, Staff.is_active).where(Staff.username == username)
        ).first()
    with _check_slot():
        with unit_of_work(maker) as s:
            throttle.reserve(s, username, source, now)
        # No transaction open during the slow part.
        if account is None:
            # Same work as a real check, so response time does not tell which usernames exist.
            verify_password(_dummy_hash(), password)
            ok = False
        else:
            ok = verify_password(account.password_hash, password) and account.is_active
    if account is None or not ok:
        if account is None:
            log.info("failed login for an unknown username from %s", address)
        else:
            with unit_of_work(maker) as s:
                record(
                    s,
                    org_id=account.org_id,
                    staff_id=account.id,
                    action="auth.login_failed",
                    target_type="staff",
                    target_id=account.id,
                    detail={"kind": kind.value, "inactive": not account.is_active},
                    request=request,
                )
        raise Unauthenticated(Msg("login_failed"), field="password")
    with unit_of_work(maker) as s:
        throttle.succeeded(s, username, source)
        staff = s.get(Staff, account.id)
        assert staff is not None  # deleting staff is not a thing; deactivating is
        issued = issue_token(s, staff, kind, now=now, name=token_name, ip=address, lifetime=lifetime)
        staff.last_login_at = now
        record(
            s,
            org_id=staff.org_id,
            staff_id=staff.id,
            action="auth.login",
            target_type="auth_token",
            target_id=issued.token.id,
            detail={"kind": kind.value},
            request=request,
        )
    return issued


def logout(session: Session, *, staff: Staff, token: AuthToken, now: datetime, request: HTTPConnection) -> None:
    """Revoke the token used for this request and record it."""
    revoke_token(session, token.id, now=now)
    record(
        session,
        org_id=staff.org_id,
        staff_id=staff.id,
        action="auth.logout" if token.kind == TokenKind.SESSION else "auth.token_revoked",
        target_type="auth_token",
        target_id=token.id,
        detail={"kind": token.kind},
        request=request,
    )


def whoami(session: Session, scope: Scope) -> tuple[Organisation, list[int] | None]:
    """The caller's organisation, and the ids of the groups they see (None: the whole organisation)."""
    org = session.get(Organisation, scope.org_id)
    assert org is not None  # a scope's organisation exists (staff.org_id is a foreign key)
    if scope.whole_org:
        return org, None
    return org, sorted(session.scalars(visible_group_ids(scope)))
