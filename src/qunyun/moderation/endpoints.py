"""REST routes of moderation: /api/v1/moderation (policies, word lists, testing a message, the
log, appeals, members' records, blacklist entries, members' roles in groups). Thin: every
route calls one service function with the caller's scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from qunyun.api.pagination import BigId, Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.moderation import service
from qunyun.moderation.schemas import (
    BlacklistIn,
    DecisionOut,
    MemberRecordOut,
    PolicyCreate,
    PolicyDetailOut,
    PolicyOut,
    PolicyUpdate,
    ReasonIn,
    RoleIn,
    RoleOut,
    TestIn,
    TestOut,
    WordListsIn,
)
from qunyun.moderation.service import DecisionView

router = APIRouter(prefix="/moderation", tags=["moderation"])

PolicyId = Annotated[Id, Path(description="Moderation policy id")]
DecisionId = Annotated[BigId, Path(description="Moderation decision id")]
MemberId = Annotated[Id, Path(description="Member id")]
GroupId = Annotated[Id, Path(description="Group id")]


@router.get("/policies", response_model=list[PolicyOut], summary="Policies you see")
def list_policies(db: DbSession, scope: CurrentScope) -> list[PolicyOut]:
    return [PolicyOut.of(p) for p in service.list_policies(db, scope)]


@router.post(
    "/policies", response_model=PolicyDetailOut, status_code=status.HTTP_201_CREATED, summary="Attach a policy"
)
def create_policy(body: PolicyCreate, db: DbSession, scope: CurrentScope, request: Request) -> PolicyDetailOut:
    row = service.create_policy(
        db,
        scope,
        name=body.name,
        target_type=body.target_type,
        target_id=body.target_id,
        settings=body.settings,
        words=body.words,
        allow=body.allow,
        enabled=body.enabled,
        strike_window_days=body.strike_window_days,
        request=request,
    )
    return PolicyDetailOut.of(row)


@router.get("/policies/{policy_id}", response_model=PolicyDetailOut, summary="One policy with its word lists")
def get_policy(policy_id: PolicyId, db: DbSession, scope: CurrentScope) -> PolicyDetailOut:
    return PolicyDetailOut.of(service.get_policy(db, scope, policy_id))


@router.patch("/policies/{policy_id}", response_model=PolicyOut, summary="Change, enable or disable a policy")
def update_policy(
    policy_id: PolicyId, body: PolicyUpdate, db: DbSession, scope: CurrentScope, request: Request
) -> PolicyOut:
    changes = body.model_dump(exclude_unset=True)
    return PolicyOut.of(service.update_policy(db, scope, policy_id, changes, request=request))


@router.delete("/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a policy")
def delete_policy(policy_id: PolicyId, db: DbSession, scope: CurrentScope, request: Request) -> Response:
    service.delete_policy(db, scope, policy_id, request=request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/policies/{policy_id}/words", response_model=PolicyOut, summary="Replace the word list or allow list")
def set_word_lists(
    policy_id: PolicyId, body: WordListsIn, db: DbSession, scope: CurrentScope, request: Request
) -> PolicyOut:
    row = service.set_word_lists(db, scope, policy_id, words=body.words, allow=body.allow, request=request)
    return PolicyOut.of(row)


@router.post("/policies/{policy_id}/test", response_model=TestOut, summary="What the policy decides on a message")
def test_message(policy_id: PolicyId, body: TestIn, db: DbSession, scope: CurrentScope) -> TestOut:
    decision = service.test_message(
        db,
        scope,
        policy_id,
        text=body.text,
        msg_type=body.msg_type,
        member_name=body.member_name,
        strikes=body.strikes,
    )
    return TestOut.of(decision)


@router.get("/decisions", response_model=Page[DecisionOut], summary="The moderation log, newest first")
def list_decisions(
    db: DbSession,
    scope: CurrentScope,
    paging: Paging,
    group: Annotated[Id | None, Query(description="Group id")] = None,
    member: Annotated[Id | None, Query(description="Member id")] = None,
    rule: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Before (ISO 8601)")] = None,
) -> Page[DecisionOut]:
    views, total = service.list_decisions(
        db,
        scope,
        group_id=group,
        member_id=member,
        rule=rule,
        action=action,
        since=since,
        until=until,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page[DecisionOut](
        items=[DecisionOut.of(v) for v in views], total=total, limit=paging.limit, offset=paging.offset
    )


@router.get("/decisions/{decision_id}", response_model=DecisionOut, summary="One decision with its reversal")
def get_decision(decision_id: DecisionId, db: DbSession, scope: CurrentScope) -> DecisionOut:
    return DecisionOut.of(service.get_decision(db, scope, decision_id))


@router.post("/decisions/{decision_id}/reverse", response_model=DecisionOut, summary="Grant an appeal")
def reverse_decision(
    decision_id: DecisionId, body: ReasonIn, db: DbSession, scope: CurrentScope, request: Request
) -> DecisionOut:
    return DecisionOut.of(service.reverse_decision(db, scope, decision_id, body.reason, request=request))


@router.get("/members/{member_id}", response_model=MemberRecordOut, summary="A member's moderation record")
def member_record(member_id: MemberId, db: DbSession, scope: CurrentScope) -> MemberRecordOut:
    return MemberRecordOut.of(service.member_record(db, scope, member_id))


@router.post(
    "/members/{member_id}/blacklist",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Blacklist a member by hand",
)
def blacklist_member(
    member_id: MemberId, body: BlacklistIn, db: DbSession, scope: CurrentScope, request: Request
) -> DecisionOut:
    decision = service.blacklist_member(
        db,
        scope,
        member_id,
        reach=body.scope,
        group_id=body.group_id,
        community_id=body.community_id,
        reason=body.reason,
        request=request,
    )
    return DecisionOut.of(DecisionView(decision))


@router.post(
    "/members/{member_id}/unblacklist", response_model=list[DecisionOut], summary="Lift a member's blacklist entries"
)
def unblacklist_member(
    member_id: MemberId, body: ReasonIn, db: DbSession, scope: CurrentScope, request: Request
) -> list[DecisionOut]:
    views = service.unblacklist_member(db, scope, member_id, reason=body.reason, request=request)
    return [DecisionOut.of(v) for v in views]


@router.get("/groups/{group_id}/roles", response_model=list[RoleOut], summary="Members' roles in a group")
def list_roles(group_id: GroupId, db: DbSession, scope: CurrentScope) -> list[RoleOut]:
    return [RoleOut.of(r) for r in service.list_member_roles(db, scope, group_id)]


@router.put("/groups/{group_id}/roles/{member_id}", response_model=RoleOut, summary="Give a member a role")
def set_role(
    group_id: GroupId, member_id: MemberId, body: RoleIn, db: DbSession, scope: CurrentScope, request: Request
) -> RoleOut:
    row = service.set_member_role(db, scope, group_id, member_id, body.role, request=request)
    assert row is not None
    return RoleOut.of(row)


@router.delete(
    "/groups/{group_id}/roles/{member_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Take a role away"
)
def remove_role(
    group_id: GroupId, member_id: MemberId, db: DbSession, scope: CurrentScope, request: Request
) -> Response:
    service.set_member_role(db, scope, group_id, member_id, None, request=request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
