"""The statistics page (figures per day, month or year as an SVG chart with the numbers beside it) and
the health page (mailboxes, outbox and queue backlog: the facts of `postbud status`)."""

from __future__ import annotations

import threading
import time
import weakref
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
from postbud.console.stats_data import SPAN, figures
from postbud.stats import By, PeriodStats
from postbud.status import mailbox_states

LABELS = {"routed_by_rule": "by_rule", "routed_by_model": "by_model", "routed_by_hand": "by_hand",
          "routed_by_fallback": "by_fallback", "held": "held", "collected": "collected",
          "delivered": "delivered", "failed": "failed"}


# Statistics are counted over every letter of the span; a view within this many seconds of the last
# one for the same organisations and period reuses its figures (a month or year of 100,000 letters
# takes about a second to count on SQLite; bench/console_bench.py).
CACHE_SECONDS = 60.0
_cache: weakref.WeakKeyDictionary[Store, dict[tuple[tuple[str, ...], str], tuple[float, list[PeriodStats]]]] = \
    weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def cached_figures(store: Store, organisations: tuple[str, ...], by: By, now: datetime) -> list[PeriodStats]:
    key = (tuple(sorted(organisations)), by)
    with _cache_lock:
        hit = _cache.get(store, {}).get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    periods = figures(store, organisations, by, now)
    with _cache_lock:
        _cache.setdefault(store, {})[key] = (time.monotonic(), periods)
    return periods


async def stats_page(request: Request, console: Console, viewer: Viewer) -> Response:
    by = request.query_params.get("by", "day")
    by = by if by in SPAN else "day"
    org = request.query_params.get("cvr", "")
    chosen = (org,) if org in viewer.organisations else viewer.organisations
    periods = await run_in_threadpool(cached_figures, console.store, chosen, cast(By, by), datetime.now(timezone.utc))
    t = translator(viewer.language)
    labels = {name: t(key) for name, key in LABELS.items()} | {"title": t("stats")}
    return render(request, "stats.html", viewer=viewer, active="stats", by=by, cvr=org, periods=periods,
                  chart=Markup(stacked_bars(periods, labels)), organisations=viewer.organisations)


def scoped_backlog(store: Store, organisations: tuple[str, ...]) -> dict[str, object]:
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    now = datetime.now(timezone.utc)
    mine = col(Delivery.organisation_cvr).in_(organisations)
    with store.read() as session:
        per_channel = session.exec(select(Delivery.channel, func.count())
                                   .where(col(Delivery.status).in_(waiting), mine).group_by(Delivery.channel)).all()
        failed = session.exec(select(func.count()).select_from(Delivery)
                              .where(Delivery.status == DeliveryStatus.FAILED, mine)).one()
        held = session.exec(select(func.count(), func.min(Message.received_at))
                            .where(Message.status == MessageStatus.HELD,
                                   col(Message.organisation_cvr).in_(organisations))).one()
    return {"outbox": dict(sorted((c, int(n)) for c, n in per_channel)), "failed": int(failed),
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
