"""Console page routes, one module per section; ``router`` collects them."""

from fastapi import APIRouter

from qunyun.console.pages import (
    channels,
    communities,
    connections,
    groups,
    inbox,
    join_requests,
    livecodes,
    members,
    moderation,
    onboarding,
    overview,
    sop,
    staff,
    stats,
    tasks,
)

router = APIRouter(include_in_schema=False)
for module in (
    overview,
    communities,
    onboarding,
    groups,
    members,
    channels,
    livecodes,
    join_requests,
    moderation,
    sop,
    staff,
    stats,
    connections,
    inbox,
    tasks,
):
    router.include_router(module.router)
