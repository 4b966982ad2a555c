"""Group QR images and fallback (staff) QR images on disk: checked like evidence images (PNG,
JPEG or WebP by their first bytes, at most 5 MiB) and stored under the var dir as
``qr/<org>/<name>-<digest>.<ext>``; rows keep that relative path. The files are served only
through the scan page's signed links (``/c/{code}/qr/...``), never listed."""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from qunyun.config import get_settings
from qunyun.tasks.storage import MEDIA_TYPES, check_image

QR_DIR = "qr"


def store_qr_image(org_id: int, name: str, data: bytes, field: str = "image") -> tuple[str, str]:
    """Write a checked image; returns its path relative to the var dir and its media type.
    ``InvalidInput`` (422) or a 413 naming ``field`` for what is not an image or too large."""
    kind = check_image(data, field)
    digest = hashlib.sha256(data).hexdigest()[:24]
    relative = f"{QR_DIR}/{org_id}/{name}-{digest}.{kind}"
    path = get_settings().var_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)  # atomic: a reader never sees half an image
    return relative, MEDIA_TYPES[kind]


def qr_file(relative: str) -> tuple[Path, str] | None:
    """The stored image's path and media type; None if it is gone or the path leaves the store."""
    root = (get_settings().var_dir / QR_DIR).resolve()
    path = (get_settings().var_dir / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path, MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")


@lru_cache
def _signing_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"qunyun.livecodes.qr", hashlib.sha256).digest()


def sign(*parts: object) -> str:
    """A short signature of ``parts`` (the scan page's image links), keyed by the secret key."""
    key = _signing_key(get_settings().resolved_secret_key())
    message = "\x1f".join(str(p) for p in parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:24]


def signature_ok(signature: str, *parts: object) -> bool:
    return hmac.compare_digest(signature.encode(), sign(*parts).encode())
