"""Runtime configuration: one settings class, environment prefix ``QUNYUN_``."""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CHECKOUT_ENV = Path(__file__).resolve().parents[2] / ".env"
PLACEHOLDER_KEYS = frozenset({"", "change-me", "changeme", "secret", "placeholder", "dev", "test"})


class Settings(BaseSettings):
    """Everything an operator may set; read from the environment and an optional ``.env`` file."""

    # A source checkout's .env is read from wherever qunyun runs; one in the working directory wins.
    model_config = SettingsConfigDict(env_prefix="QUNYUN_", env_file=(CHECKOUT_ENV, ".env"), extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    time_zone: str = "Asia/Shanghai"
    secret_key: str = ""
    # Keys used before the current secret_key (comma-separated): connection secrets encrypted with
    # them still decrypt until `qunyun connections rotate-key` re-encrypts them with the current one.
    previous_secret_keys: str = ""
    # Webhooks older than this many seconds (by the platform's timestamp) are refused as replays;
    # 0 turns the window off.
    webhook_max_age: int = Field(default=300, ge=0)
    # Processed webhook payloads (message text: personal data) are purged after this many days
    # (0: as soon as they are processed); the delivery's record stays (docs/webhooks.md).
    webhook_payload_retention_days: int = Field(default=7, ge=0)
    redis_url: str | None = None
    # Reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated). Empty:
    # never; the TCP peer is the client (docs/access-control.md, "Behind a proxy").
    trusted_proxies: str = ""
    # Message text is personal data: keep it only this many days (0 = never store text).
    message_text_retention_days: int = Field(default=30, ge=0)
    session_max_age_seconds: int = Field(default=12 * 3600, gt=0)
    api_token_max_age_days: int = Field(default=90, gt=0)
    worker_concurrency: int = Field(default=1, ge=0)
    job_lease_seconds: int = Field(default=300, gt=0)
    default_language: Literal["zh", "en"] = "zh"
    # Staff tasks (docs/tasks.md): the first reminder this many minutes before a task is due; an
    # open task overdue by more than the grace is escalated to the organisation's lead, once.
    task_remind_before_minutes: int = Field(default=60, ge=0)
    task_escalation_grace_minutes: int = Field(default=60, ge=0)
    # Request bodies (docs/api.md): every body is capped at max_body_bytes, event
    # ingestion (POST /api/v1/events) at max_events_body_bytes; larger ones are 413.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_events_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Database connections: the pool must hold every admitted request plus background work, so
    # that no request waits on the pool; up to admission_queue requests beyond
    # max_concurrent_requests wait at most admission_wait_seconds for a slot; the others, and those
    # whose wait ends, get 503 with Retry-After.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=30, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # Requests run in threads that share the GIL with the event loop: more of them at once adds
    # no throughput on a CPU-bound page and starves the loop (docs/performance.md, edge bench).
    max_concurrent_requests: int = Field(default=8, ge=1)
    admission_wait_seconds: float = Field(default=5.0, gt=0)
    admission_queue: int = Field(default=32, ge=0)
    # A font file with Chinese characters for live-code posters (.ttf/.otf/.ttc); empty: the one
    # fontconfig or Debian's font packages provide (livecodes/posters.py).
    poster_font: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError as exc:
                    raise ValueError(f"QUNYUN_TRUSTED_PROXIES: {item!r} is not an IP address or network") from exc
        return value

    @field_validator("time_zone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _production_needs_key(self) -> Settings:
        if self.env == "production" and self.secret_key.strip().lower() in PLACEHOLDER_KEYS:
            raise ValueError("QUNYUN_SECRET_KEY must be set to a real secret in production")
        if self.env == "production" and len(self.secret_key) < 32:
            raise ValueError("QUNYUN_SECRET_KEY must be at least 32 characters in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'qunyun.db').as_posix()}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def resolved_secret_key(self) -> str:
        """The secret key; in development it is generated into ``var/secret_key`` on first use."""
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
