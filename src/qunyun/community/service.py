"""Communities and their playbooks: validated create/update with an audit entry, and the guided
0→1 setup (positioning → persona → value → naming → rules → welcome)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import Scope, group_visible, require_lead
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.models import Community, Group, Playbook
from qunyun.timeutil import utcnow

# 000 §二.一, 003 五要素: the community types of the methodology.
COMMUNITY_TYPES = ("welfare", "experience", "flash", "learning", "core", "local", "alumni", "other")
VALUES_OFFERED = ("social", "product", "content", "service", "welfare")
ORGANISATION_MODELS = ("lead-owner-admin", "hq-monitor-leader-student")
# Placeholders a naming template may use (M2: 行业+定位, 公司+福利, region, sequence number).
NAMING_FIELDS = ("brand", "region", "type", "seq")
TEXT_LIMIT = 4000


@dataclass(frozen=True)
class Step:
    key: str
    community_fields: tuple[str, ...] = ()
    playbook_fields: tuple[str, ...] = ()


SETUP_STEPS = (
    Step("positioning", ("name", "community_type", "purpose", "goals")),
    Step("persona", ("target_persona",)),
    Step("value", ("value_offered", "channels_plan", "rhythm")),
    Step("naming", (), ("naming_template",)),
    Step("rules", ("rules", "values", "division_of_labour", "organisation_model")),
    Step("welcome", (), ("welcome_text",)),
)
STEP_KEYS = tuple(s.key for s in SETUP_STEPS)
COMMUNITY_FIELDS = tuple(f for s in SETUP_STEPS for f in s.community_fields)
PLAYBOOK_FIELDS = tuple(f for s in SETUP_STEPS for f in s.playbook_fields)
ALL_FIELDS = Step("all", COMMUNITY_FIELDS, PLAYBOOK_FIELDS)  # the full edit form


def step(key: str) -> Step:
    for s in SETUP_STEPS:
        if s.key == key:
            return s
    raise NotFound(f"no setup step {key!r}", field="step")


def group_name(template: str, *, brand: str, region: str = "华东", type_: str = "", seq: int = 1) -> str:
    """A group name from a naming template (also its preview, with example values); InvalidInput
    naming an unknown placeholder."""
    fields = {"brand": brand, "region": region, "type": type_, "seq": seq}
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise InvalidInput(f"naming_template: {exc}", field="naming_template") from exc
    unknown = sorted({n for n in names if n not in fields})
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in NAMING_FIELDS)
        raise InvalidInput(
            f"naming_template: unknown placeholder {{{unknown[0]}}}; use {allowed}", field="naming_template"
        )
    return template.format(**fields)


def clean(form: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The submitted values of ``fields``, checked; InvalidInput names the first bad field."""
    out: dict[str, Any] = {}
    for field in fields:
        if field == "value_offered":
            raw = form.get(field) or []
            values = [raw] if isinstance(raw, str) else list(raw)
            bad = [v for v in values if v not in VALUES_OFFERED]
            if bad:
                raise InvalidInput(f"value_offered: unknown value {bad[0]!r}", field=field)
            out[field] = [v for v in VALUES_OFFERED if v in values]
            continue
        value = str(form.get(field) or "").strip()
        if len(value) > TEXT_LIMIT:
            raise InvalidInput(f"{field}: at most {TEXT_LIMIT} characters", field=field)
        if field == "name":
            if not value:
                raise InvalidInput("name: a community needs a name", field=field)
            if len(value) > 200:
                raise InvalidInput("name: at most 200 characters", field=field)
        elif field == "community_type" and value not in COMMUNITY_TYPES:
            raise InvalidInput(f"community_type: unknown type {value!r}", field=field)
        elif field == "organisation_model" and value not in ORGANISATION_MODELS:
            raise InvalidInput(f"organisation_model: unknown model {value!r}", field=field)
        elif field == "naming_template":
            if len(value) > 200:
                raise InvalidInput("naming_template: at most 200 characters", field=field)
            group_name(value, brand="")
        out[field] = value
    return out


def require_community(session: Session, scope: Scope, community_id: int) -> Community:
    """A community of the organisation that the scope may see: leads and analysts every one,
    other staff those their groups belong to (else NotFound)."""
    query = select(Community).where(Community.id == community_id, Community.org_id == scope.org_id)
    if not scope.whole_org:
        query = query.where(Community.id.in_(select(Group.community_id).where(group_visible(scope))))
    community = session.scalar(query)
    if community is None:
        raise NotFound(f"no community {community_id}", field="community_id")
    return community


def playbook_of(session: Session, community: Community) -> Playbook | None:
    """The community's playbook (its first one, when it has several)."""
    return session.scalar(select(Playbook).where(Playbook.community_id == community.id).order_by(Playbook.id).limit(1))


def _check_name(session: Session, scope: Scope, name: str, exclude: int | None = None) -> None:
    query = select(Community.id).where(Community.org_id == scope.org_id, Community.name == name)
    if exclude is not None:
        query = query.where(Community.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict(f"name: a community named {name!r} exists", field="name")


def _playbook_name(session: Session, scope: Scope, community_name: str) -> str:
    base = f"{community_name} 剧本"
    name, n = base, 1
    while session.scalar(select(Playbook.id).where(Playbook.org_id == scope.org_id, Playbook.name == name)):
        n += 1
        name = f"{base} {n}"
    return name


def create_community(
    session: Session, scope: Scope, values: dict[str, Any], *, request: HTTPConnection | None = None
) -> Community:
    """A new community (lead only) with a playbook of its own carrying its rules."""
    require_lead(scope)
    _check_name(session, scope, values["name"])
    now = utcnow()
    community = Community(org_id=scope.org_id, created_at=now, **values)
    session.add(community)
    session.flush()
    session.add(
        Playbook(
            org_id=scope.org_id,
            community_id=community.id,
            name=_playbook_name(session, scope, community.name),
            rules_text=community.rules,
            created_at=now,
        )
    )
    session.flush()
    record_by(
        session,
        scope,
        action="community.create",
        target_type="community",
        target_id=community.id,
        detail={"fields": sorted(values)},
        request=request,
    )
    return community


def update_community(
    session: Session,
    scope: Scope,
    community: Community,
    community_values: dict[str, Any],
    playbook_values: dict[str, Any] | None = None,
    *,
    request: HTTPConnection | None = None,
) -> list[str]:
    """Change the positioning and the playbook fields (lead only); returns what changed. The
    playbook carries the community's rules to new groups, so it follows a change of them."""
    require_lead(scope)
    if "rules" in community_values:
        playbook_values = {**(playbook_values or {}), "rules_text": community_values["rules"]}
    if "name" in community_values:
        _check_name(session, scope, community_values["name"], exclude=community.id)
    changed = apply_changes(
        session, scope, community, community_values, action="community.update", target_type="community", request=request
    )
    if playbook_values:
        playbook = playbook_of(session, community)
        if playbook is None:
            playbook = Playbook(
                org_id=scope.org_id,
                community_id=community.id,
                name=_playbook_name(session, scope, community.name),
                created_at=utcnow(),
            )
            session.add(playbook)
            session.flush()
        changed += apply_changes(
            session, scope, playbook, playbook_values, action="playbook.update", target_type="playbook", request=request
        )
    return changed


def setup_progress(community: Community, playbook: Playbook | None) -> dict[str, bool]:
    """Which setup steps have their main field filled in."""
    return {
        "positioning": bool(community.purpose),
        "persona": bool(community.target_persona),
        "value": bool(community.value_offered),
        "naming": bool(playbook and playbook.naming_template),
        "rules": bool(community.rules),
        "welcome": bool(playbook and playbook.welcome_text),
    }
