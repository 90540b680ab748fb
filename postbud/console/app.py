"""The console mounted at /console on the daemon's HTTP listener."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from core.config import Config
from core.recipients import RecipientResolver
from core.storage.db import Store
from postbud.console import (
    admin_pages, location_pages, oidc_pages, placed_pages, queue_pages, recipients_pages, signin, stats_pages,
    trace_pages,
)
from postbud.console.web import PREFIX, Console


def console_mount(store: Store, config: Callable[[], Config],
                  directory: Callable[[], RecipientResolver | None]) -> Mount:
    """`config` and `directory` are called per request, so a reload reaches the console at once."""
    console = Console(store, config, directory)
    routes: list[Route | Mount] = [
        *signin.signin_routes(console),
        *oidc_pages.oidc_routes(console),
        *queue_pages.routes(console),
        *placed_pages.routes(console),
        *trace_pages.routes(console),
        *stats_pages.routes(console),
        *admin_pages.routes(console),
        *recipients_pages.routes(console),
        *location_pages.routes(console),
        Mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="console-static"),
    ]
    return Mount(PREFIX, routes=routes)
