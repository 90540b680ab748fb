"""What the e-mail channel makes for a recipient who chose a notice or the daily digest instead of the
letter: the notice (no content, with the settings link), or nothing now, the letter being kept for
the digest (delivery/digest.py); when the recipient switched notifications off, nothing. The trace's
`delivery_sent` says which (`mode`, `notified`, `content_sent`: always false)."""

from __future__ import annotations

from delivery.outbound import Composed, NotificationRoute, Outbound
from delivery.plain import waiting_notice

# The reply a digest recipient's outbox row is settled with; the digest lists exactly these rows.
DIGEST_REPLY = "kept for the recipient's daily digest; nothing sent now"
OFF_REPLY = "not notified: the recipient switched notifications off"


def _route(item: Outbound) -> NotificationRoute:
    if item.notification is not None:
        return item.notification
    recipient = item.recipient
    address = recipient.notification_address or recipient.email
    assert address is not None  # the recipients file refuses a notice recipient without an address
    return NotificationRoute("digest" if recipient.notify == "digest" else "notice", True, address, "")


def notification_for(item: Outbound, *, from_addr: str, message_id: str, console_url: str) -> Composed:
    """What to send `item.recipient` instead of the letter (see the module docstring)."""
    route = _route(item)
    if not route.enabled:
        return Composed(b"", route.address, message_id, {"mode": route.mode, "notified": False,
                                                         "content_sent": False}, reply=OFF_REPLY)
    if route.mode == "digest":
        return Composed(b"", route.address, message_id, {"mode": "digest", "notified": "in the daily digest",
                                                         "content_sent": False}, reply=DIGEST_REPLY)
    organisation = item.message.recipient.name or "your organisation"
    notice = waiting_notice(item.message, organisation=organisation, from_addr=from_addr, to_addr=route.address,
                            message_id=message_id, trace_id=item.trace_id, console_url=console_url,
                            settings_link=route.settings_link)
    return Composed(notice, route.address, message_id, {"mode": "notice", "notified": True, "content_sent": False,
                                                        "to": route.address})
