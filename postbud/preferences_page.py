"""The recipients' notification settings page on the daemon's HTTP listener (the confirmation page's
look, in Danish): reached by the signed link under every notice and digest, it switches the notices
off or on and asks for a separate address, used once the link mailed to that address is opened.

A GET changes nothing (mail scanners open links); every change is a POST to the same signed URL,
whose token is the credential. The logic is delivery/preferences.py.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core.config import Config
from core.storage.db import Store
from core.storage.models import utcnow
from delivery.channels import smtp_settings
from delivery.errors import DeliveryError
from delivery.preferences import (
    PreferenceError,
    Preferences,
    confirm_address,
    confirmation_email,
    known_recipient,
    open_settings_token,
    pending_address,
    preferences,
    request_address,
    set_enabled,
    use_file_address,
)
from delivery.recipients import RecipientsFile
from delivery.smtp import SmtpSender
from postbud.confirm_html import page
from postbud.console.web import form
from postbud.names import EMAIL

log = logging.getLogger(__name__)

# Sends one plain mail (the address confirmation) to one address; returns the server's reply.
Mailer = Callable[[bytes, str], Awaitable[str]]


def smtp_mailer(config: Callable[[], Config]) -> Mailer:
    """A mailer over the delivery relay (TLS always), one connection per mail."""

    async def send(wire: bytes, to: str) -> str:
        settings = config().delivery
        async with SmtpSender(smtp_settings(settings)) as sender:
            return await sender.send(wire, sender=settings.from_address, recipients=[to])

    return send


def _button(action: str, label: str, extra: str = "") -> str:
    return (f'<form method="post" style="margin:.8rem 0">{extra}<input type="hidden" name="action" '
            f'value="{action}"><button type="submit">{html.escape(label)}</button></form>')


def _settings_page(prefs: Preferences, org_name: str, digest_time: str, note: str = "") -> HTMLResponse:
    if prefs.mode == "letter":
        return page("Dine beskeder", f"{note}Du får selve brevene fra {org_name} krypteret; der er ingen "
                                     "beskeder at slå fra her.")
    how = "en besked for hvert brev" if prefs.mode == "notice" else f"en daglig oversigt kl. {digest_time}"
    state = "slået til" if prefs.enabled else "slået fra"
    text = (f"{note}Beskeder om ny post til dig fra {org_name} ({how}) er {state} og sendes til "
            f"{prefs.address}. Beskederne indeholder aldrig selve brevene.")
    if prefs.pending_address:
        text += f" {prefs.pending_address} venter på at blive bekræftet via linket i mailen dertil."
    forms = _button("off", "Slå beskeder fra") if prefs.enabled else _button("on", "Slå beskeder til")
    field = ('<label>Send beskederne til en anden adresse<br><input type="email" name="address" required '
             'style="font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0"></label>')
    forms += _button("address", "Send bekræftelseslink", field)
    if prefs.separate_address:
        forms += _button("own", "Brug adressen fra din administrator igen")
    return page("Dine beskeder", text, forms)


def preferences_routes(store: Store, config: Callable[[], Config],
                       directory: Callable[[], RecipientsFile | None], *,
                       mailer: Mailer | None = None) -> list[Route]:
    """The settings page (GET shows, POST changes) and the address confirmation (GET asks, POST confirms)."""
    send = mailer or smtp_mailer(config)

    def organisation_name(org: str) -> str:
        try:
            return f"{config().organisation(org).name} (CVR {org})"
        except KeyError:
            return f"CVR {org}"

    def current(org: str, rid: str) -> tuple[Preferences, str]:
        recipient = known_recipient(directory(), org, rid)
        with store.read() as session:
            prefs = preferences(session, org, recipient)
        return prefs, organisation_name(org)

    async def change(org: str, rid: str, action: str, address: str) -> str:
        """Do what the posted form asks; the line the page then starts with."""
        if action in ("on", "off"):
            await run_in_threadpool(set_enabled, store, org, rid, action == "on")
            return f"Beskeder er slået {'til' if action == 'on' else 'fra'}. "
        if action == "own":
            await run_in_threadpool(use_file_address, store, org, rid)
            return "Beskederne sendes til adressen fra din administrator igen. "
        if action != "address":
            raise PreferenceError("unknown action")
        if not EMAIL.match(address):
            return f"{address or 'Adressen'} er ikke en e-mailadresse; prøv igen. "
        cfg = config()
        confirmation = await run_in_threadpool(request_address, store, cfg, org, rid, address)
        try:
            await send(confirmation_email(confirmation, cfg, organisation_name=organisation_name(org)), address)
        except (DeliveryError, OSError) as exc:
            log.warning("notification address confirmation for %s of %s not sent: %s", rid, org, exc)
            return "Mailen med bekræftelseslinket kunne ikke sendes lige nu; prøv igen senere. "
        return f"Vi har sendt et link til {address}; beskederne går dertil, når linket er åbnet. "

    async def settings(request: Request) -> Response:
        token = str(request.path_params["token"])
        try:
            org, rid = open_settings_token(store.vault, token, now=utcnow())
            note = ""
            if request.method == "POST":
                posted = await form(request)
                note = await change(org, rid, posted.get("action", ""), posted.get("address", "").strip())
            prefs, name = await run_in_threadpool(current, org, rid)
        except PreferenceError as exc:
            return page("Linket virker ikke", f"Linket er ugyldigt eller udløbet; den næste besked har et nyt "
                                              f"link ({exc}).", status=404)
        return _settings_page(prefs, name, config().notices.digest_time, note)

    async def confirm(request: Request) -> Response:
        token = str(request.path_params["token"])
        if request.method == "GET":
            row = await run_in_threadpool(pending_address, store, token)
            if row is None:
                return page("Linket virker ikke", "Dette bekræftelseslink er ukendt, brugt eller udløbet.",
                            status=404)
            form_html = '<form method="post"><button type="submit">Bekræft</button></form>'
            return page("Bekræft adressen", f"Bekræft, at beskeder om ny post skal sendes til "
                                            f"{row.pending_address}.", form_html)
        try:
            row = await run_in_threadpool(confirm_address, store, token)
        except PreferenceError as exc:
            return page("Ikke bekræftet", str(exc), status=404)
        return page("Bekræftet", f"Tak. Beskeder om ny post sendes nu til {row.address}.")

    return [Route("/recipients/notifications/confirm/{token}", confirm, methods=["GET", "POST"]),
            Route("/recipients/notifications/{token}", settings, methods=["GET", "POST"])]
