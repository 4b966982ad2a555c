"""Slow down password guessing without letting anyone lock others out.

Failed logins are counted in the ``login_failures`` table, so every server process sees the same
counts. Three limits apply within one window (15 minutes by default):

- per username **and** source (``per_account_and_source``, 5): guessing one account from one
  address. Failures from address A never lock the right password out at address B, so nobody
  can lock the lead out by typing wrong passwords for her.
- per source (``per_source``, 30): one address spraying many usernames.
- per username across all sources (``per_account``, 100): distributed guessing from many
  addresses. This is the trade-off: an attacker holding 20+ addresses (each may contribute at most
  5 failures to one account) can still lock that account for everyone for up to one window; without
  the ceiling a botnet would get unlimited guesses. The ceiling is high enough that ordinary
  mistakes and a single attacker never reach it.

A source is the client address (an IPv6 /64), see ``qunyun.auth.address``. An attempt is recorded
as a failure *before* its password is checked (and the record deleted when the password is
right), so concurrent attempts cannot slip past a limit while their checks run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.orm import Session

from qunyun.errors import QunyunError
from qunyun.locale import Msg
from qunyun.models import LoginFailure


class TooManyAttempts(QunyunError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(Msg("too_many_attempts", seconds=retry_after), retry_after=retry_after)
        self.retry_after = retry_after


class LoginsBusy(TooManyAttempts):
    """Every password-check slot stayed taken while this login waited (see auth.service)."""

    status_code = 503
    code = "login_busy"

    def __init__(self, retry_after: int = 5) -> None:
        QunyunError.__init__(self, Msg("login.busy"), retry_after=retry_after)
        self.retry_after = retry_after


def normalise_username(username: str) -> str:
    return username.strip().lower()[:100]


@dataclass(frozen=True)
class LoginThrottle:
    """The limits; the counts live in the database (see the module docstring)."""

    per_account_and_source: int = 5
    per_source: int = 30
    per_account: int = 100
    window: timedelta = timedelta(minutes=15)

    def _limits(self, username: str, source: str) -> list[tuple[ColumnElement[bool], int]]:
        by_user = LoginFailure.username == username
        by_source = LoginFailure.source == source
        return [
            (and_(by_user, by_source), self.per_account_and_source),
            (by_source, self.per_source),
            (by_user, self.per_account),
        ]

    def check(self, session: Session, username: str, source: str, now: datetime) -> None:
        """Raise TooManyAttempts while ``username`` from ``source`` is over any limit."""
        username = normalise_username(username)
        cutoff = now - self.window
        limits = self._limits(username, source)
        counts = session.execute(
            select(*(func.count().filter(condition) for condition, _ in limits)).where(
                LoginFailure.failed_at > cutoff,
                (LoginFailure.username == username) | (LoginFailure.source == source),
            )
        ).one()
        waits = [
            self._wait(session, condition, count - limit, cutoff, now)
            for (condition, limit), count in zip(limits, counts, strict=True)
            if count >= limit
        ]
        if waits:
            raise TooManyAttempts(max(waits))

    def _wait(
        self, session: Session, condition: ColumnElement[bool], excess: int, cutoff: datetime, now: datetime
    ) -> int:
        """Seconds until the count under ``condition`` falls below its limit: until the failure
        ``excess`` places after the oldest one in the window ages out."""
        oldest = session.scalar(
            select(LoginFailure.failed_at)
            .where(condition, LoginFailure.failed_at > cutoff)
            .order_by(LoginFailure.failed_at)
            .offset(excess)
            .limit(1)
        )
        if oldest is None:
            return 1
        return max(1, math.ceil((self.window - (now - oldest)).total_seconds()))

    def reserve(self, session: Session, username: str, source: str, now: datetime) -> None:
        """Check the limits again and record this attempt as a failure; prune expired records.

        Runs in a short write transaction, so on SQLite two concurrent attempts cannot both pass
        the check with the last free slot.
        """
        self.check(session, username, source, now)
        session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - self.window))
        session.add(LoginFailure(username=normalise_username(username), source=source, failed_at=now))
        session.flush()

    def succeeded(self, session: Session, username: str, source: str) -> None:
        """A correct password clears its username's failures from this source (including the
        attempt's own record), not those from other sources."""
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.username == normalise_username(username), LoginFailure.source == source
            )
        )
