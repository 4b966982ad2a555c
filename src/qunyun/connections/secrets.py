"""Connection secrets, encrypted at rest.

The key is derived from ``QUNYUN_SECRET_KEY`` (in development: the key generated into the var
directory) with HKDF, so the same secret serves other purposes without the ciphertexts depending
on them. Keys listed in ``QUNYUN_PREVIOUS_SECRET_KEYS`` still decrypt; ``rotate`` re-encrypts a
value with the current key (``qunyun connections rotate-key`` does it for every connection).
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qunyun.config import get_settings
from qunyun.errors import QunyunError
from qunyun.locale import Msg

_INFO = b"qunyun connection secrets v1"


class SecretsUnreadable(QunyunError):
    """Stored secrets that no configured key decrypts (the key changed without rotation)."""

    status_code = 500
    code = "secrets_unreadable"


def _fernet_key(secret: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode("utf-8"))
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=8)
def _cipher(current: str, previous: str) -> MultiFernet:
    keys = [current, *(k.strip() for k in previous.split(",") if k.strip())]
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def cipher() -> MultiFernet:
    """The cipher for the configured keys: encrypts with the current one, decrypts with any."""
    settings = get_settings()
    return _cipher(settings.resolved_secret_key(), settings.previous_secret_keys)


def encrypt(values: dict[str, Any]) -> str:
    """``values`` as encrypted text for ``Connection.secrets`` ("" when there are none)."""
    if not values:
        return ""
    return cipher().encrypt(json.dumps(values, ensure_ascii=False, sort_keys=True).encode("utf-8")).decode("ascii")


def decrypt(stored: str) -> dict[str, Any]:
    """The secrets stored by :func:`encrypt`; ``SecretsUnreadable`` when no key opens them."""
    if not stored:
        return {}
    try:
        data = json.loads(cipher().decrypt(stored.encode("ascii")))
    except (InvalidToken, ValueError) as exc:
        raise SecretsUnreadable(Msg("err.connection.secrets_unreadable")) from exc
    return dict(data)


def rotate(stored: str) -> str:
    """``stored`` re-encrypted with the current key (unchanged when empty)."""
    if not stored:
        return ""
    try:
        return cipher().rotate(stored.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise SecretsUnreadable(Msg("err.connection.secrets_unreadable")) from exc
