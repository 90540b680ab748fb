"""Access profiles (seed 002): what each may reach. The server checks these on every request."""

from __future__ import annotations

from enum import StrEnum


class Profile(StrEnum):
    ADMINISTRATOR = "administrator"
    FULL = "full"
    PROCESSING = "processing"
    PROCESSING_ARCHIVE = "processing+archive"
    FEEDBACK = "feedback"
    DELIVERY = "delivery"


class Area(StrEnum):
    QUEUE = "queue"  # read held letters (text included)
    PLACE = "place"  # place a held letter
    TRACE = "trace"  # the organisation's track and trace
    DOCUMENTS = "documents"  # a letter's text and original documents from the trace
    RESEND = "resend"
    STATS = "stats"
    HEALTH = "health"
    AUDIT = "audit"
    USERS = "users"  # accounts and settings of the organisation
    RECIPIENTS = "recipients"  # the organisation's recipients and groups (the recipients file)
    MINE = "mine"  # only the letters delivered to or awaiting the account's own recipient id


ALLOWED: dict[Profile, frozenset[Area]] = {
    Profile.ADMINISTRATOR: frozenset(Area) - {Area.MINE},
    Profile.FULL: frozenset(Area) - {Area.MINE, Area.USERS, Area.RECIPIENTS},
    Profile.PROCESSING: frozenset({Area.QUEUE, Area.PLACE, Area.RESEND}),
    Profile.PROCESSING_ARCHIVE: frozenset({Area.QUEUE, Area.PLACE, Area.RESEND, Area.TRACE, Area.DOCUMENTS}),
    Profile.FEEDBACK: frozenset({Area.STATS, Area.TRACE}),
    Profile.DELIVERY: frozenset({Area.MINE}),
}


def allows(profile: str, area: Area) -> bool:
    try:
        return area in ALLOWED[Profile(profile)]
    except ValueError:
        return False  # an unknown profile in the table reaches nothing


# Where a profile lands after signing in, its first area in this order.
HOME_ORDER = (Area.QUEUE, Area.TRACE, Area.MINE, Area.STATS)


def home(profile: str) -> Area:
    return next((a for a in HOME_ORDER if allows(profile, a)), Area.MINE)
