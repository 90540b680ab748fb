"""The statistics page (figures per day, month or year as an SVG chart with the numbers beside it) and
the health page (mailboxes, outbox and queue backlog: the facts of `postbud status`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import cast

from markupsafe import Markup
from sqlalchemy import func
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, Message, MessageStatus
from postbud.console.charts import stacked_bars
from postbud.console.i18n import translator
from postbud.console.profiles import Area
from postbud.console.sessions import Viewer
from postbud.console.web import Console, page, render
from postbud.console.stats_data import PERIODS, figures
from postbud.stats import By
from postbud.status import mailbox_states

LABELS = {"routed_by_rule": "by_rule", "routed_by_model": "by_model", "routed_by_hand": "by_hand",
          "routed_by_fallback": "by_fallback", "held": "held", "collected": "collected",
          "delivered": "delivered", "failed": "failed"}


async def stats_page(request: Request, console: Console, viewer: Viewer) -> Response:
    by = request.query_params.get("by", "day")
    by = by if by in PERIODS else "day"
    org = request.query_params.get("cvr", "")
    chosen = (org,) if org in viewer.organisations else viewer.organisations
    periods = await run_in_threadpool(figures, console.store, chosen, cast(By, by), datetime.now(timezone.utc))
    t = translator(viewer.language)
    labels = {name: t(key) for name, key in LABELS.items()} | {"title": t("stats")}
    return render(request, "stats.html", viewer=viewer, active="stats", by=by, cvr=org, periods=periods,
                  chart=Markup(stacked_bars(periods, labels)), organisations=viewer.organisations)


def scoped_backlog(store: Store, organisations: tuple[str, ...]) -> dict[str, object]:
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    now = datetime.now(timezone.utc)
    mine = col(Delivery.organisation_cvr).in_(organisations)
    with store.read() as session:
        # Grouped by the index's own columns (status, organisation, channel): read from it alone.
        waiting_rows = session.exec(select(Delivery.status, Delivery.organisation_cvr, Delivery.channel, func.count())
                                    .where(col(Delivery.status).in_(waiting), mine)
                                    .group_by(col(Delivery.status), col(Delivery.organisation_cvr),
                                              col(Delivery.channel))).all()
        failed = session.exec(select(func.count()).select_from(Delivery)
                              .where(Delivery.status == DeliveryStatus.FAILED, mine)).one()
        held = session.exec(select(func.count(), func.min(Message.received_at))
                            .where(Message.status == MessageStatus.HELD,
                                   col(Message.organisation_cvr).in_(organisations))).one()
    per_channel: dict[str, int] = {}
    for _, _, channel, n in waiting_rows:
        per_channel[channel] = per_channel.get(channel, 0) + int(n)
    return {"outbox": dict(sorted(per_channel.items())), "failed": int(failed),
            "held": int(held[0]), "oldest_held": held[1], "now": now}


async def health_page(request: Request, console: Console, viewer: Viewer) -> Response:
    config = console.config()
    states = await run_in_threadpool(mailbox_states, config, console.store)
    mine = [s for s in states if s.mailbox.split("/", 1)[0] in viewer.organisations]
    backlog = await run_in_threadpool(scoped_backlog, console.store, viewer.organisations)
    return render(request, "health.html", viewer=viewer, active="health", mailboxes=mine, backlog=backlog)


def routes(console: Console) -> list[Route]:
    return [
        Route("/stats", page(console, Area.STATS, stats_page), methods=["GET"]),
        Route("/health", page(console, Area.HEALTH, health_page), methods=["GET"]),
    ]
