"""Connections in and out of the API. Secrets go in; only whether each is set comes out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qunyun.connections.platforms import platform_setup
from qunyun.connections.secrets import SecretsUnreadable, decrypt
from qunyun.errors import InvalidInput
from qunyun.models import Connection


def callback_path(platform: str, connection_id: int) -> str:
    """Where the platform posts this connection's webhooks."""
    return f"/hooks/{platform}/{connection_id}"


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(min_length=1, max_length=16, examples=["wecom"])
    name: str = Field(min_length=1, max_length=100, examples=["企业微信主体"])
    settings: dict[str, Any] = Field(default_factory=dict, description="What may be shown: ids, URLs, modes")
    secrets: dict[str, Any] = Field(
        default_factory=dict, description="Tokens and keys: stored encrypted, never returned"
    )


class ConnectionUpdate(BaseModel):
    """A change: ``settings`` replace the stored ones as a whole; each secret given replaces the
    stored one, the others are kept."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    settings: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None


class ConnectionOut(BaseModel):
    id: int
    platform: str
    name: str
    settings: dict[str, Any]
    has_secrets: dict[str, bool] = Field(description="For each secret the platform takes: whether it is set")
    status: str
    last_error: str | None
    callback_path: str
    created_at: datetime
    updated_at: datetime
    tested_at: datetime | None

    @classmethod
    def of(cls, row: Connection) -> ConnectionOut:
        try:
            stored = set(decrypt(row.secrets))
        except SecretsUnreadable:  # the list still shows the connection; testing it says why
            stored = set()
        try:
            names = [f.name for f in platform_setup(row.platform).secret_fields]
        except InvalidInput:  # a platform of imported data ("import"): nothing to set up
            names = []
        has = {name: name in stored for name in names}
        has.update({name: True for name in stored if name not in has})
        return cls(
            id=row.id,
            platform=row.platform,
            name=row.name,
            settings=dict(row.settings or {}),
            has_secrets=has,
            status=row.status,
            last_error=row.last_error,
            callback_path=callback_path(row.platform, row.id),
            created_at=row.created_at,
            updated_at=row.updated_at,
            tested_at=row.tested_at,
        )


class ConnectionAdded(BaseModel):
    """What ``qunyun connections add --format json`` prints (a stable contract)."""

    id: int
    platform: str
    callback_path: str
