"""Evidence images: checked (PNG, JPEG or WebP by their first bytes, at most 5 MiB) and stored
under the var dir as ``evidence/<org>/<task>-<digest>.<ext>``; the row keeps that relative path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from qunyun.config import get_settings
from qunyun.errors import InvalidInput, QunyunError
from qunyun.locale import Msg

MAX_IMAGE_BYTES = 5 * 1024 * 1024
EVIDENCE_DIR = "evidence"
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class EvidenceTooLarge(QunyunError):
    status_code = 413
    code = "payload_too_large"


def image_kind(data: bytes) -> str | None:
    """``png``, ``jpeg`` or ``webp`` by the file's signature; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_image(data: bytes, field: str = "evidence_image") -> str:
    """The image's kind; EvidenceTooLarge (413) or InvalidInput (422) naming ``field``."""
    if len(data) > MAX_IMAGE_BYTES:
        raise EvidenceTooLarge(Msg("err.task.image_too_large", limit="5 MiB"), field=field, limit=MAX_IMAGE_BYTES)
    if not data:
        raise InvalidInput(Msg("err.task.image_empty"), field=field)
    kind = image_kind(data)
    if kind is None:
        raise InvalidInput(Msg("err.task.image_type"), field=field)
    return kind


def _root() -> Path:
    return (get_settings().var_dir / EVIDENCE_DIR).resolve()


def store_image(org_id: int, task_id: int, data: bytes) -> str:
    """Write a checked image and return its path relative to the var dir. The name carries the
    content's digest, so storing the same image again (a retried upload) writes one file."""
    kind = check_image(data)
    digest = hashlib.sha256(data).hexdigest()[:24]
    relative = f"{EVIDENCE_DIR}/{org_id}/{task_id}-{digest}.{kind}"
    path = get_settings().var_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)  # atomic: a reader never sees half an image
    return relative


def image_file(relative: str) -> tuple[Path, str] | None:
    """The stored image's path and media type; None if it is gone or the path leaves the store."""
    path = (get_settings().var_dir / relative).resolve()
    if not path.is_relative_to(_root()) or not path.is_file():
        return None
    return path, MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
