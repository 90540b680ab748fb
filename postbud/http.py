"""The daemon's HTTP listener: /metrics for Prometheus, /healthz (alive), /readyz (started, database reachable,
every mailbox able to run)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import Mailbox, MailboxStatus, Organisation


def make_app(metrics: Metrics, store: Store, is_ready: Callable[[], bool],
             extra: Sequence[BaseRoute] = ()) -> Starlette:
    async def metrics_endpoint(_: Request) -> Response:
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if not is_ready():
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            stopped = await asyncio.to_thread(_stopped_mailboxes, store)
        except Exception as exc:
            return JSONResponse({"status": "database unreachable", "error": type(exc).__name__}, 503)
        if stopped:
            # Not ready to do its job for these mailboxes: a person must act (the reason says how).
            return JSONResponse({"status": "mailboxes cannot run", "mailboxes": stopped}, 503)
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *extra,
        ]
    )


def _stopped_mailboxes(store: Store) -> list[dict[str, str]]:
    """Mailboxes that cannot run until a person acts (needs_reauth, error), with their reason."""
    with store.read() as session:
        rows = session.exec(
            select(Mailbox, Organisation.cvr)
            .join(Organisation, col(Organisation.id) == col(Mailbox.organisation_id))
            .where(col(Mailbox.status).in_([MailboxStatus.NEEDS_REAUTH, MailboxStatus.ERROR]))
            .order_by(col(Organisation.cvr), col(Mailbox.name))
        ).all()
    return [{"mailbox": f"{cvr}/{mb.name}", "provider": mb.provider, "status": mb.status,
             "reason": mb.last_error or ""} for mb, cvr in rows]


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside postbud's loop: the daemon owns the signals and tells the server when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_task(app: Starlette, host: str, port: int, *, name: str) -> tuple[EmbeddedServer, asyncio.Task[None]]:
    """Start `app` on host:port in the running loop; set `server.should_exit` to stop it."""
    server = EmbeddedServer(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    return server, asyncio.create_task(server.serve(), name=name)
