"""Logging in and out: password check, throttling, token issue and the audit trail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import client_ip, record
from qunyun.auth.passwords import hash_password, verify_password
from qunyun.auth.throttle import LoginThrottle
from qunyun.auth.tokens import IssuedToken, TokenKind, issue_token, revoke_token
from qunyun.models import AuthToken, Staff

log = logging.getLogger(__name__)


@lru_cache
def _dummy_hash() -> str:
    return hash_password("qunyun-timing-equaliser")


@dataclass(frozen=True)
class LoginFailed:
    """A refused login. Returned rather than raised so the caller's unit of work still commits
    the audit record of the failure."""

    message: str = "wrong username or password"


def login(
    session: Session,
    *,
    username: str,
    password: str,
    kind: TokenKind,
    throttle: LoginThrottle,
    now: datetime,
    request: HTTPConnection | None = None,
    token_name: str = "",
    lifetime: timedelta | None = None,
) -> IssuedToken | LoginFailed:
    """Check the password and issue a session or API token; TooManyAttempts while throttled."""
    ip = client_ip(request)
    throttle.check(username, ip, now)
    staff = session.scalar(select(Staff).where(Staff.username == username))
    if staff is None:
        # Same work as a real check, so response time does not tell which usernames exist.
        verify_password(_dummy_hash(), password)
        ok = False
    else:
        ok = verify_password(staff.password_hash, password) and staff.is_active
    if staff is None or not ok:
        throttle.failed(username, ip, now)
        if staff is None:
            log.info("failed login for an unknown username from %s", ip)
        else:
            record(
                session,
                org_id=staff.org_id,
                staff_id=staff.id,
                action="auth.login_failed",
                target_type="staff",
                target_id=staff.id,
                detail={"kind": kind.value, "inactive": not staff.is_active},
                request=request,
            )
        return LoginFailed()
    throttle.succeeded(username)
    issued = issue_token(session, staff, kind, now=now, name=token_name, ip=ip, lifetime=lifetime)
    staff.last_login_at = now
    record(
        session,
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
