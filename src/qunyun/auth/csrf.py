"""CSRF tokens for console forms (and for API writes authenticated by the session cookie).

A logged-in form carries HMAC(secret key, session token id): it is bound to one session, cannot
be computed without the server key, and needs no server-side storage. The login form has no
session yet, so it uses a double-submit pair instead: a random nonce in a cookie and
HMAC(secret key, nonce) in the form. That stops login CSRF (being logged in as the attacker).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from qunyun.config import get_settings
from qunyun.errors import Forbidden
from qunyun.locale import Msg

CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_NONCE_COOKIE = "qunyun_login"


def _mac(purpose: str, value: str) -> str:
    key = get_settings().resolved_secret_key().encode("utf-8")
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def session_csrf_token(session_token_id: int) -> str:
    """The CSRF token of the console session whose AuthToken id is ``session_token_id``."""
    return _mac("csrf-session", str(session_token_id))


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_token(nonce: str) -> str:
    """The CSRF token that goes with the login nonce cookie."""
    return _mac("csrf-login", nonce)


def check_csrf(expected: str | None, supplied: str | None) -> None:
    """Raise Forbidden unless ``supplied`` equals ``expected`` (constant-time comparison)."""
    if not expected or not supplied or not hmac.compare_digest(expected.encode(), supplied.encode()):
        raise Forbidden(Msg("api.csrf_failed"), field=CSRF_FORM_FIELD)
