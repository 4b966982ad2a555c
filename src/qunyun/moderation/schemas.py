"""Input and output shapes of moderation's API (policies, decisions, records, roles)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qunyun.api.pagination import Id
from qunyun.models import (
    BlacklistScope,
    MemberGroupRole,
    MemberRole,
    ModerationDecision,
    ModerationPolicy,
    PolicyTarget,
)
from qunyun.moderation.service import DecisionView, MemberRecord
from qunyun.moderation.types import Decision

WordIn = str | dict[str, Any]


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    target_type: PolicyTarget
    target_id: Id | None = Field(default=None, description="The community, playbook or group (none for organisation)")
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict, description="The policy without its word lists")
    words: list[WordIn] = Field(default_factory=list, description='"word" or {"word", "category", "pinyin"}')
    allow: list[str] = Field(default_factory=list)
    strike_window_days: int = Field(default=30, ge=1, le=3650)


class PolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    settings: dict[str, Any] | None = None
    strike_window_days: int | None = Field(default=None, ge=1, le=3650)


class WordListsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    words: list[WordIn] | None = Field(default=None, description="Replaces the word list (null: keep it)")
    allow: list[str] | None = Field(default=None, description="Replaces the allow list (null: keep it)")


class PolicyOut(BaseModel):
    id: int
    name: str
    target_type: str
    target_id: int | None
    enabled: bool
    version: int
    strike_window_days: int
    settings: dict[str, Any]
    words: int = Field(description="How many words the list holds")
    allow: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ModerationPolicy) -> PolicyOut:
        return cls(
            id=row.id,
            name=row.name,
            target_type=row.target_type,
            target_id=row.group_id or row.playbook_id or row.community_id,
            enabled=row.enabled,
            version=row.version,
            strike_window_days=row.strike_window_days,
            settings=row.settings,
            words=len(row.words or []),
            allow=len(row.allow or []),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class PolicyDetailOut(PolicyOut):
    word_list: list[dict[str, Any]]
    allow_list: list[str]

    @classmethod
    def of(cls, row: ModerationPolicy) -> PolicyDetailOut:
        base = PolicyOut.of(row).model_dump()
        return cls(**base, word_list=list(row.words or []), allow_list=list(row.allow or []))


class TestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=4000)
    msg_type: str = Field(default="text", description="An interchange msg_type, or join")
    member_name: str = Field(default="", max_length=200)
    strikes: int = Field(default=0, ge=0, le=1000, description="The member's strikes so far (ladder step)")


class MatchOut(BaseModel):
    word: str
    category: str
    start: int
    end: int


class TestOut(BaseModel):
    action: str
    rule: str | None
    rule_kind: str | None
    category: str | None
    matches: list[MatchOut]
    detail: dict[str, Any]

    @classmethod
    def of(cls, d: Decision) -> TestOut:
        return cls(
            action=str(d.action),
            rule=d.rule,
            rule_kind=str(d.rule_kind) if d.rule_kind is not None else None,
            category=d.category,
            matches=[MatchOut(word=h.word, category=h.category, start=h.start, end=h.end) for h in d.matches],
            detail=d.detail,
        )


class ReversalOut(BaseModel):
    staff_id: int | None
    reason: str
    at: datetime


class DecisionOut(BaseModel):
    id: int
    at: datetime
    group_id: int | None
    member_id: int | None
    event: str | None
    message: str | None
    policy_id: int | None
    rule: str | None
    rule_kind: str | None
    category: str | None
    action: str
    matches: list[dict[str, Any]]
    excerpt: str
    detail: dict[str, Any]
    dry_run: bool
    source: str
    decided_by_id: int | None
    blacklist_scope: str | None
    mute_seconds: int | None
    action_ids: list[int]
    reversal: ReversalOut | None

    @classmethod
    def of(cls, view: DecisionView) -> DecisionOut:
        d: ModerationDecision = view.decision
        r = view.reversal
        return cls(
            id=d.id,
            at=d.at,
            group_id=d.group_id,
            member_id=d.member_id,
            event=d.event_external_id,
            message=d.message_ref,
            policy_id=d.policy_id,
            rule=d.rule,
            rule_kind=d.rule_kind,
            category=d.category,
            action=d.action,
            matches=list(d.matches or []),
            excerpt=d.excerpt,
            detail=dict(d.detail or {}),
            dry_run=d.dry_run,
            source=d.source,
            decided_by_id=d.decided_by_id,
            blacklist_scope=d.blacklist_scope,
            mute_seconds=d.mute_seconds,
            action_ids=list(d.action_ids or []),
            reversal=ReversalOut(staff_id=r.staff_id, reason=r.reason, at=r.at) if r is not None else None,
        )


# Required fields are checked by the service after the path's objects (a missing one is a 404
# whatever the body says), so they default to empty here.
class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500, description="Required")


class BlacklistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: BlacklistScope = BlacklistScope.ORGANISATION
    group_id: Id | None = None
    community_id: Id | None = None
    reason: str = Field(default="", max_length=500, description="Required")


class MemberRecordOut(BaseModel):
    member_id: int
    strikes: int
    strike_window_days: int
    mutes: list[DecisionOut]
    blacklist: list[DecisionOut]
    decisions: list[DecisionOut]

    @classmethod
    def of(cls, record: MemberRecord) -> MemberRecordOut:
        return cls(
            member_id=record.member.id,
            strikes=record.strikes,
            strike_window_days=record.strike_window_days,
            mutes=[DecisionOut.of(DecisionView(d)) for d in record.mutes],
            blacklist=[DecisionOut.of(DecisionView(d)) for d in record.blacklist],
            decisions=[DecisionOut.of(v) for v in record.decisions],
        )


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(default="", max_length=16, description=f"One of {', '.join(r.value for r in MemberRole)}")


class RoleOut(BaseModel):
    group_id: int
    member_id: int
    role: str
    updated_at: datetime

    @classmethod
    def of(cls, row: MemberGroupRole) -> RoleOut:
        return cls(group_id=row.group_id, member_id=row.member_id, role=row.role, updated_at=row.updated_at)
