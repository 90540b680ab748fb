"""The daily digest: one mail a day per recipient with `notify = "digest"`, at `[notices] digest_time`
local time, listing how many letters arrived and from which senders, when; no title, no content,
no CPR number, a link to the console and the signed link to the recipient's settings.

The digest of day D lists the letters handed to the digest (outbox rows settled with
`DIGEST_REPLY`) from D-1 at the digest time up to D at the digest time. Its notice's key is
`digest:<CVR>:<recipient>:<D>`, unique in the notices outbox: deciding it twice (a restart, a
second instance) queues it once, and the notices outbox sends it once. A day without letters
queues nothing. The digest of D is decided a minute after its time, so a letter settled in the
last second before it is in it; days missed while no instance ran are caught up (a week back).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.config import Config
from core.lifecycle import record
from core.logs import mask_cpr
from core.notify import queue_notice
from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, Message, Notice
from core.untrusted import one_line
from delivery.notifying import DIGEST_REPLY
from delivery.plain import settings_footer
from delivery.preferences import preferences, settings_link
from delivery.recipients import Recipient, RecipientsFile

log = logging.getLogger(__name__)

KIND = "digest"
SETTLE = dt.timedelta(minutes=1)
CATCH_UP_DAYS = 7
MAX_LISTED = 200  # a digest names at most this many letters; it counts them all


@dataclass(frozen=True)
class Letter:
    message_id: str
    sender: str
    received_at: dt.datetime
    handed_at: dt.datetime


def key(org: str, rid: str, day: dt.date) -> str:
    return f"{KIND}:{org}:{rid}:{day.isoformat()}"


def digest_moment(config: Config, day: dt.date) -> dt.datetime:
    """When day D's digest is due: the digest time, local, as UTC."""
    hours, minutes = (int(part) for part in config.notices.digest_time.split(":"))
    local = dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=ZoneInfo(config.notices.timezone))
    return local.astimezone(dt.UTC)


def due_days(config: Config, now: dt.datetime) -> list[dt.date]:
    """The days (oldest first) whose digest time, plus the settling minute, has passed, a week back."""
    today = now.astimezone(ZoneInfo(config.notices.timezone)).date()
    days = [today - dt.timedelta(days=back) for back in range(CATCH_UP_DAYS)]
    return sorted(day for day in days if digest_moment(config, day) + SETTLE <= now)


def queue_digests(store: Store, config: Config, directory: RecipientsFile | None, *, now: dt.datetime) -> int:
    """Queue every due digest that is not queued yet and has letters; returns how many were queued."""
    if directory is None or not config.notices.enabled:
        return 0
    days = due_days(config, now)
    if not days:
        return 0
    queued = 0
    for org in directory.organisations():
        readers = [directory.get(org, rid) for rid in sorted(directory.names(org))]
        readers = [r for r in readers if r.notify == "digest"]
        if readers:
            queued += _queue_for(store, config, org, readers, days, now)
    return queued


def _queue_for(store: Store, config: Config, org: str, readers: list[Recipient], days: list[dt.date],
               now: dt.datetime) -> int:
    windows = {day: (digest_moment(config, day - dt.timedelta(days=1)), digest_moment(config, day))
               for day in days}
    wanted = {key(org, r.id, day) for r in readers for day in days}
    with store.read() as session:
        done = set(session.exec(select(Notice.key).where(col(Notice.key).in_(wanted))).all())
        rows = session.execute(  # five columns: sqlmodel's select types at most four
            sa_select(col(Delivery.recipient), col(Delivery.delivered_at), col(Message.id),
                      col(Message.sender_name), col(Message.sender_id), col(Message.received_at))
            .join(Message, col(Message.id) == col(Delivery.message_id))
            .where(col(Delivery.organisation_cvr) == org, col(Delivery.recipient).in_([r.id for r in readers]),
                   col(Delivery.status) == DeliveryStatus.DELIVERED, col(Delivery.last_reply) == DIGEST_REPLY,
                   col(Delivery.delivered_at) >= windows[days[0]][0],
                   col(Delivery.delivered_at) < windows[days[-1]][1])
        ).all()
    letters: dict[tuple[str, dt.date], list[Letter]] = defaultdict(list)
    for rid, handed, mid, name, sender_id, received in rows:
        if handed is None:
            continue
        day = next((d for d, (start, end) in windows.items() if start <= handed < end), None)
        if day is not None:
            letters[(rid, day)].append(Letter(mid, name or sender_id or "ukendt afsender", received, handed))
    queued = 0
    for reader in readers:
        for day in days:
            found = letters.get((reader.id, day))
            if found and key(org, reader.id, day) not in done:
                queued += _queue_one(store, config, org, reader, day, windows[day][0], found)
    return queued


def _queue_one(store: Store, config: Config, org: str, reader: Recipient, day: dt.date, since: dt.datetime,
               letters: list[Letter]) -> int:
    """Queue one digest with a trace event on each letter it names; 0 when the recipient switched
    notifications off or another instance queued it first."""
    try:
        with store.transaction() as session:
            prefs = preferences(session, org, reader)
            if not prefs.enabled or prefs.address is None:
                return 0
            subject, text = compose_text(config, org, reader, since, letters)
            notice = queue_notice(session, org, [prefs.address], subject, text, key=key(org, reader.id, day),
                                  kind=KIND, detail={"recipient": reader.id, "day": day.isoformat(),
                                                     "letters": len(letters)})
            for letter in letters:
                record(session, letter.message_id, "digest_queued", actor="notices",
                       detail={"recipient": reader.id, "day": day.isoformat(),
                               "notice": notice.id if notice else None})
    except IntegrityError:
        log.info("digest of %s for %s on %s was queued already", reader.id, org, day)
        return 0
    log.info("digest of %s for %s on %s queued: %d letters", reader.id, org, day, len(letters))
    return 1


def compose_text(config: Config, org: str, reader: Recipient, since: dt.datetime,
                 letters: list[Letter]) -> tuple[str, str]:
    """The subject and text: a count, each letter's sender and received time, the console link."""
    zone = ZoneInfo(config.notices.timezone)
    try:
        org_name = config.organisation(org).name
    except KeyError:
        org_name = f"CVR {org}"
    count = len(letters)
    noun = "nyt brev" if count == 1 else "nye breve"
    ordered = sorted(letters, key=lambda letter: letter.received_at)
    # a sender may be a person, named by CPR number: never in a digest
    lines = [f"  - {mask_cpr(one_line(letter.sender, limit=120))}, modtaget {letter.received_at.astimezone(zone):%d.%m.%Y kl. %H:%M}"
             for letter in ordered[:MAX_LISTED]]
    if count > MAX_LISTED:
        lines.append(f"  … og {count - MAX_LISTED} flere")
    text = (f"Hej {reader.name}\n\n"
            f"Siden {since.astimezone(zone):%d.%m.%Y kl. %H:%M} er der kommet {count} {noun} til dig "
            f"fra {org_name}:\n\n" + "\n".join(lines) + "\n\n"
            f"Brevene er ikke vedhæftet. Læs dem i postbud-konsollen: {config.console_url}/console/\n\n"
            f"{count} letter{'s' if count != 1 else ''} for you from {org_name}; they are not attached. "
            "Read them in the console.\n")
    return f"Dagens post: {count} {noun} til {org_name}", text


def footer(config: Config, store: Store, notice: Notice, *, now: dt.datetime) -> str | None:
    """The signed settings link under a digest, made when it is mailed (never stored or traced)."""
    if notice.kind != KIND:
        return None
    _, org, rid, _ = notice.key.split(":", 3)
    return settings_footer(settings_link(config, store.vault, org, rid, now=now))
