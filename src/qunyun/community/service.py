"""Communities and their playbooks: validated create/update with an audit entry, and the guided
0→1 setup (positioning → persona → value → naming → rules → welcome)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import Scope, group_visible, require_lead
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Community, Group, Playbook
from qunyun.onboarding import settings as onboarding_settings
from qunyun.texttemplate import TemplateError, fill
from qunyun.timeutil import utcnow

# 000 §二.一, 003 五要素: the community types of the methodology.
COMMUNITY_TYPES = ("welfare", "experience", "flash", "learning", "core", "local", "alumni", "other")
VALUES_OFFERED = ("social", "product", "content", "service", "welfare")
ORGANISATION_MODELS = ("lead-owner-admin", "hq-monitor-leader-student")
# Placeholders a naming template may use (M2: 行业+定位, 公司+福利, region, sequence number);
# {n} is another name for {seq}, the one the simulator's playbooks were first written with.
NAMING_FIELDS = ("brand", "region", "type", "seq", "n")
TEXT_LIMIT = 4000  # the textarea's maxlength; the columns are Text
NAME_LIMIT = 200  # Community.name, Playbook.naming_template: String(200)
# A naming template is literal text, ``{{`` / ``}}`` for a brace, and ``{field}`` placeholders.
# Nothing else: no format specs or conversions, so a template cannot blow a name up
# (``{brand:>20000000}``) or fail while rendering (``{brand:d}``).


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
    Step("welcome", (), onboarding_settings.FIELDS),
)
STEP_KEYS = tuple(s.key for s in SETUP_STEPS)
COMMUNITY_FIELDS = tuple(f for s in SETUP_STEPS for f in s.community_fields)
PLAYBOOK_FIELDS = tuple(f for s in SETUP_STEPS for f in s.playbook_fields)
ALL_FIELDS = Step("all", COMMUNITY_FIELDS, PLAYBOOK_FIELDS)  # the full edit form


def step(key: str) -> Step:
    for s in SETUP_STEPS:
        if s.key == key:
            return s
    raise NotFound(Msg("err.community.no_step", step=key), field="step")


def _field_label(field: str) -> Msg:
    """The form label of a community or playbook field (the console's catalogue)."""
    return Msg(f"f_{field}")


def group_name(template: str, *, brand: str, region: str = "华东", type_: str = "", seq: int = 1) -> str:
    """A group name from a naming template (also its preview, with example values); InvalidInput
    naming the first placeholder that is not one of NAMING_FIELDS, or a stray brace."""
    values = {"brand": brand, "region": region, "type": type_, "seq": str(seq), "n": str(seq)}
    try:
        return fill(template, values)
    except TemplateError as error:
        if error.stray_brace:
            raise InvalidInput(
                Msg("err.naming.stray_brace", brace=error.token, position=error.position),
                field="naming_template",
                position=error.position,
            ) from None
        raise InvalidInput(
            Msg("err.naming.unknown_placeholder", placeholder=error.token, allowed=_allowed_placeholders()),
            field="naming_template",
            placeholder=error.token,
        ) from None


def _allowed_placeholders() -> str:
    return " ".join("{" + f + "}" for f in NAMING_FIELDS)


def clean(form: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The submitted values of ``fields``, checked; InvalidInput names the first bad field."""
    out: dict[str, Any] = {}
    for field in fields:
        if field == "value_offered":
            raw = form.get(field) or []
            values = [raw] if isinstance(raw, str) else list(raw)
            bad = [v for v in values if v not in VALUES_OFFERED]
            if bad:
                raise InvalidInput(Msg("err.community.unknown_value", value=repr(bad[0])), field=field)
            out[field] = [v for v in VALUES_OFFERED if v in values]
            continue
        if field in onboarding_settings.FIELDS:
            out[field] = onboarding_settings.clean_field(field, form.get(field))
            continue
        value = str(form.get(field) or "").strip()
        limit = NAME_LIMIT if field in ("name", "naming_template") else TEXT_LIMIT
        if len(value) > limit:
            raise InvalidInput(
                Msg("err.community.too_long", label=_field_label(field), limit=limit), field=field, limit=limit
            )
        if field == "name" and not value:
            raise InvalidInput(Msg("err.community.name_required"), field=field)
        if field == "community_type" and value not in COMMUNITY_TYPES:
            raise InvalidInput(Msg("err.community.unknown_type", value=repr(value)), field=field)
        if field == "organisation_model" and value not in ORGANISATION_MODELS:
            raise InvalidInput(Msg("err.community.unknown_model", value=repr(value)), field=field)
        if field == "naming_template":
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
        raise NotFound(Msg("err.community.not_found", id=community_id), field="community_id")
    return community


def list_communities(session: Session, scope: Scope) -> list[Community]:
    """The communities the scope may see (as ``require_community``), by name."""
    query = select(Community).where(Community.org_id == scope.org_id)
    if not scope.whole_org:
        query = query.where(Community.id.in_(select(Group.community_id).where(group_visible(scope))))
    return list(session.scalars(query.order_by(Community.name)))


def group_counts(session: Session, scope: Scope, community_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(groups, members) of the groups in scope per community id."""
    if not community_ids:
        return {}
    rows = session.execute(
        select(Group.community_id, func.count(), func.sum(Group.member_count))
        .where(Group.community_id.in_(list(community_ids)), group_visible(scope))
        .group_by(Group.community_id)
    )
    return {int(cid or 0): (int(n), int(m or 0)) for cid, n, m in rows}


def playbooks_of(session: Session, community_ids: Sequence[int]) -> dict[int, Playbook]:
    """Each community's playbook (its first one, as ``playbook_of``) by community id."""
    if not community_ids:
        return {}
    query = select(Playbook).where(Playbook.community_id.in_(list(community_ids))).order_by(Playbook.id.desc())
    return {p.community_id: p for p in session.scalars(query) if p.community_id is not None}


def community_groups(session: Session, scope: Scope, community: Community) -> list[Group]:
    """The groups in scope of a community, by name."""
    query = select(Group).where(Group.community_id == community.id, group_visible(scope)).order_by(Group.name)
    return list(session.scalars(query))


def example_region(session: Session, community: Community | None) -> str:
    """A region for a naming template's preview: one of the community's groups', else 华东."""
    if community is None:
        return "华东"
    query = select(Group.region).where(Group.community_id == community.id, Group.region != "").limit(1)
    return session.scalar(query) or "华东"


def playbook_of(session: Session, community: Community) -> Playbook | None:
    """The community's playbook (its first one, when it has several)."""
    return session.scalar(select(Playbook).where(Playbook.community_id == community.id).order_by(Playbook.id).limit(1))


def _check_name(session: Session, scope: Scope, name: str, exclude: int | None = None) -> None:
    query = select(Community.id).where(Community.org_id == scope.org_id, Community.name == name)
    if exclude is not None:
        query = query.where(Community.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict(Msg("err.community.name_taken", name=name), field="name")


def _playbook_name(session: Session, scope: Scope, community_name: str) -> str:
    """「<community> 剧本」, numbered when taken; the community's name is shortened so that the
    playbook's name fits its column (both are String(200))."""
    n = 1
    while True:
        tail = " 剧本" if n == 1 else f" 剧本 {n}"
        name = community_name[: NAME_LIMIT - len(tail)] + tail
        if not session.scalar(select(Playbook.id).where(Playbook.org_id == scope.org_id, Playbook.name == name)):
            return name
        n += 1


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
