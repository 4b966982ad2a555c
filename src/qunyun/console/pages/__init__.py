"""Console page routes, one module per section; ``router`` collects them."""

from fastapi import APIRouter

from qunyun.console.pages import channels, communities, connections, groups, members, overview, staff, stats

router = APIRouter(include_in_schema=False)
for module in (overview, communities, groups, members, channels, staff, stats, connections):
    router.include_router(module.router)
