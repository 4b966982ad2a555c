"""Console sessions and API bearer tokens.

The secret is shown to its holder once; the database keeps only its SHA-256, so a copy of the
database cannot be replayed as a login. Secrets are 256-bit random strings, which is why a fast
hash (not argon2) is the right tool here: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.errors import Unauthenticated
from qunyun.models import AuthToken, Staff

# last_used_at is bookkeeping, not security: writing it on every request would turn every read
# into a write, so it moves at most once a minute.
TOUCH_INTERVAL = timedelta(minutes=1)


class TokenKind(StrEnum):
    SESSION = "session"
    API = "api"


# A recognisable prefix lets secret scanners (and people) tell a leaked qunyun token apart.
_PREFIX = {TokenKind.SESSION: "qys_", TokenKind.API: "qya_"}


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: ``secret`` exists only here and in the holder's hands."""

    token: AuthToken
    secret: str


@dataclass(frozen=True)
class Authenticated:
    """The outcome of verifying a secret: the token row and the staff member it belongs to."""

    token: AuthToken
    staff: Staff


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue_token(
    session: Session,
    staff: Staff,
    kind: TokenKind,
    *,
    now: datetime,
    name: str = "",
    ip: str | None = None,
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """Create a session or API token for ``staff``; the default lifetime comes from settings."""
    if lifetime is None:
        settings = get_settings()
        lifetime = (
            timedelta(seconds=settings.session_max_age_seconds)
            if kind is TokenKind.SESSION
            else timedelta(days=settings.api_token_max_age_days)
        )
    secret = _PREFIX[kind] + secrets.token_urlsafe(32)
    token = AuthToken(
        staff_id=staff.id,
        kind=kind.value,
        token_hash=hash_secret(secret),
        name=name[:100],
        created_at=now,
        expires_at=now + lifetime,
        last_used_at=None,
        revoked_at=None,
        ip=ip[:64] if ip else None,
    )
    session.add(token)
    session.flush()
    return IssuedToken(token=token, secret=secret)


def verify_token(session: Session, secret: str, *, kinds: set[TokenKind], now: datetime) -> Authenticated:
    """The token and staff behind ``secret``; Unauthenticated if unknown, expired, revoked or the
    account is disabled. The message never says which, so it cannot be used as an oracle."""
    invalid = Unauthenticated("invalid or expired credentials")
    if not secret or len(secret) > 200:
        raise invalid
    row = session.execute(
        select(AuthToken, Staff)
        .join(Staff, Staff.id == AuthToken.staff_id)
        .where(AuthToken.token_hash == hash_secret(secret))
    ).one_or_none()
    if row is None:
        raise invalid
    token, staff = row
    if (
        token.kind not in {k.value for k in kinds}
        or token.revoked_at is not None
        or token.expires_at <= now
        or not staff.is_active
    ):
        raise invalid
    _remember_owner(token.token_hash, staff.org_id)
    return Authenticated(token=token, staff=staff)


@dataclass(frozen=True)
class LiveToken:
    """A live API token found by :func:`live_api_tokens`, and its holder."""

    token_id: int
    staff_id: int
    org_id: int
    role: str
    needs_touch: bool


_tokens, _staff = AuthToken.__table__, Staff.__table__
# Built once: a live post's batch runs it every time, and a Core statement made ahead costs a
# fraction of an ORM query built per call.
_LIVE_API_TOKENS = (
    select(_tokens.c.token_hash, _tokens.c.id, _tokens.c.last_used_at, _staff.c.id, _staff.c.org_id, _staff.c.role)
    .select_from(_tokens.join(_staff, _staff.c.id == _tokens.c.staff_id))
    .where(
        _tokens.c.token_hash.in_(bindparam("hashes", expanding=True)),
        _tokens.c.kind == TokenKind.API.value,
        _tokens.c.revoked_at.is_(None),
        _tokens.c.expires_at > bindparam("now"),
        _staff.c.is_active.is_(True),
    )
)


def live_api_tokens(session: Session, hashes: Iterable[str], *, now: datetime) -> dict[str, LiveToken]:
    """The live API tokens among ``hashes`` (SHA-256 of the secrets), by hash, in one query:
    the check :func:`verify_token` makes, for many requests at once."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    rows = session.connection().execute(_LIVE_API_TOKENS, {"hashes": wanted, "now": now}).all()
    return {
        token_hash: LiveToken(token_id, staff_id, org_id, role, last_used is None or now - last_used >= TOUCH_INTERVAL)
        for token_hash, token_id, last_used, staff_id, org_id, role in rows
    }


# Which organisation a token (by hash) belongs to, as verified earlier in this process. A token
# never changes organisation, so this may route a request before the token is verified again;
# it says nothing of whether the token is still live.
_OWNERS_MAX = 10_000
_owners: dict[str, int] = {}


def _remember_owner(token_hash: str, org_id: int) -> None:
    if len(_owners) >= _OWNERS_MAX:
        _owners.clear()
    _owners[token_hash] = org_id


def known_owner(token_hash: str) -> int | None:
    """The organisation of the token with ``token_hash``, if this process has verified it before."""
    return _owners.get(token_hash)


def needs_touch(token: AuthToken, now: datetime) -> bool:
    return token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL


def touch_token(session: Session, token_id: int, now: datetime) -> None:
    """Record use of a token, unless it was recorded less than a minute ago (a conditional
    UPDATE, so concurrent requests do not race each other into extra writes)."""
    session.execute(
        update(AuthToken)
        .where(
            AuthToken.id == token_id,
            or_(AuthToken.last_used_at.is_(None), AuthToken.last_used_at <= now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_token(session: Session, token_id: int, *, now: datetime) -> None:
    """Revoke one token (idempotent; the row stays as a record)."""
    session.execute(
        update(AuthToken)
        .where(AuthToken.id == token_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_all_for_staff(session: Session, staff_id: int, *, now: datetime) -> None:
    """Revoke every live token of a staff member (used when an account is disabled)."""
    session.execute(
        update(AuthToken)
        .where(AuthToken.staff_id == staff_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
