"""The recipients' confirmation page on the daemon's HTTP listener, in Danish and in the console's look,
naming the organisation: the onboarding checklist a recipient walks through with their invitation link
(confirm the address, give or be issued a key, type the encrypted test letter's code). The logic is
delivery/approval.py and delivery/onboarding.py; this module only reads forms and picks the page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from urllib.parse import parse_qsl

from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core.config import Config, OrganisationConfig
from core.storage.db import Store
from core.storage.models import Organisation, utcnow
from delivery.approval import ApprovalError, confirm
from delivery.channels import smtp_settings
from delivery.errors import DeliveryError
from delivery.issue import IssuingError, issue_smime, load_ca, load_issuing_ca
from delivery.key_offer import MAX_KEY_BYTES, KeyRefused, OfferedKey, Refusal, check_offered_key
from delivery.onboarding import Journey, OnboardingError, Step, confirm_test_code, listed, open_journey, provide_key
from delivery.onboarding_mail import send_pkcs12, send_test_letter
from delivery.recipients import KeyKind, RecipientsFile
from delivery.smtp import SmtpSender
from postbud import confirm_html as ui

_GONE = ("Linket virker ikke", "Dette bekræftelseslink er ukendt, brugt eller udløbet.")


def _organisation_name(store: Store, cvr: str) -> str:
    with store.read() as session:
        row = session.exec(select(Organisation).where(Organisation.cvr == cvr)).first()
    return f"{row.name} (CVR {cvr})" if row and row.name else f"CVR {cvr}"


async def _posted(request: Request) -> tuple[dict[str, str], bytes | None]:
    """The form's fields and the uploaded file's bytes, read with a size cap (no multipart library:
    the stdlib's MIME parser reads the one small form this page has)."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_KEY_BYTES + 16 * 1024:
            raise KeyRefused(Refusal.UNREADABLE, "Filen er for stor til at være en offentlig nøgle.")
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return dict(parse_qsl(body.decode("utf-8", "replace"))), None
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode("latin-1") + bytes(body))
    fields: dict[str, str] = {}
    upload: bytes | None = None
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            upload = data
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, upload


class _Flow:
    """One request's context: the store, the current config and recipients, the organisation's name."""

    def __init__(self, store: Store, config: Config | None, directory: RecipientsFile | None,
                 trust_store: Path | None) -> None:
        self.store, self.config, self.directory, self.trust_store = store, config, directory, trust_store

    def may_issue(self, org: str) -> bool:
        if self.config is None:
            return False
        try:
            return self.config.organisation(org).issue_certificates
        except KeyError:
            return False

    async def show(self, journey: Journey, *, lead: str = "", extra: str = "", status: int = 200) -> HTMLResponse:
        """The page for the step the recipient is on."""
        name = await run_in_threadpool(_organisation_name, self.store, journey.organisation)
        who = journey.email or journey.recipient
        if journey.step is Step.INVITED:
            return ui.page("Bekræft din adresse", lead or f"Bekræft, at {who} skal modtage digital post for {name}.",
                           extra + ui.confirm_form(), step=journey.step, status=status)
        if journey.step is Step.ADDRESS_CONFIRMED:
            recipient = listed(self.directory, journey.organisation, journey.recipient)
            if recipient is None or self.config is None:
                return ui.page("Bekræftet", lead or "Din adresse er bekræftet. Din administrator gør resten; "
                               "du kan lukke siden.", extra, step=journey.step, status=status)
            text = lead or (f"Din adresse er bekræftet. For at modtage post for {name} krypteret skal vi bruge "
                            "din offentlige nøgle.")
            return ui.page("Din nøgle", text, extra + ui.key_forms(may_issue=self.may_issue(journey.organisation)),
                           step=journey.step, status=status)
        if journey.step is Step.KEY_PROVIDED and journey.key_kind is None:
            return ui.page("Bekræftet", lead or "Din adresse er bekræftet; din nøgle er allerede registreret. "
                           "Du kan lukke siden.", extra, step=journey.step, status=status)
        if journey.step is Step.KEY_PROVIDED:
            return ui.page("Testbrevet er ikke sendt", lead or "Din nøgle er modtaget, men testbrevet kunne ikke "
                           "sendes endnu. Vi prøver igen; du kan også selv prøve nu.", extra + ui.resend_form(),
                           step=journey.step, status=status)
        return ui.page("Skriv koden fra testbrevet", lead or f"Vi har sendt et testbrev til {who}, krypteret til "
                       "din nøgle. Åbn det og skriv koden her.",
                       extra + ui.code_form() + ui.other_key(ui.key_forms(may_issue=self.may_issue(journey.organisation))),
                       step=journey.step, status=status)

    async def send_test(self, journey: Journey) -> bool:
        assert self.config is not None
        cfg = self.config
        try:
            async with SmtpSender(smtp_settings(cfg.delivery)) as sender:
                await send_test_letter(sender, self.store, cfg.delivery, journey.organisation, journey.recipient,
                                       organisation_name=_plain_name(cfg, journey.organisation), now=utcnow())
        except (DeliveryError, OnboardingError):
            return False  # the daemon's onboarding pass sends it later
        return True

    def offer_checks(self, journey: Journey, data: bytes) -> OfferedKey:
        assert self.config is not None and journey.email is not None
        org = _org_config(self.config, journey.organisation)
        try:
            ca = load_issuing_ca(org.ca_cert, org.ca_crl) if org is not None else None
            anchors = self.trust_store.read_bytes() if self.trust_store is not None else None
        except (IssuingError, OSError) as exc:
            raise KeyRefused(Refusal.UNTRUSTED, f"Nøglen kan ikke kontrolleres lige nu ({exc}).") from None
        return check_offered_key(data, journey.email, now=utcnow(), trust_store=anchors, ca=ca)

    def issue(self, journey: Journey) -> tuple[OfferedKey, bytes, str]:
        """A certificate from the organisation's CA: the key offered, the PKCS#12 file, its passphrase."""
        assert self.config is not None and journey.email is not None
        org = _org_config(self.config, journey.organisation)
        if org is None or not org.issue_certificates or org.ca_cert is None or org.ca_key is None:
            raise KeyRefused(Refusal.UNTRUSTED, "Din organisation udsteder ikke certifikater.")
        try:
            ca_cert, ca_key = load_ca(org.ca_cert, org.ca_key)
        except IssuingError:
            raise KeyRefused(Refusal.UNTRUSTED, "Certifikatet kan ikke udstedes lige nu; kontakt din "
                                                "administrator.") from None
        recipient = listed(self.directory, journey.organisation, journey.recipient)
        issued = issue_smime(ca_cert, ca_key, name=recipient.name if recipient else journey.recipient,
                             email=journey.email, days=org.issued_certificate_days, now=utcnow(),
                             organisation=org.name)
        offered = self.offer_checks(journey, issued.cert_pem)  # the same checks as an upload
        return offered, issued.pkcs12, issued.passphrase


def _org_config(config: Config, cvr: str) -> OrganisationConfig | None:
    try:
        return config.organisation(cvr)
    except KeyError:
        return None


def _plain_name(config: Config, cvr: str) -> str:
    try:
        return config.organisation(cvr).name
    except KeyError:
        return f"CVR {cvr}"


async def _act(flow: _Flow, token: str, journey: Journey, fields: dict[str, str], upload: bytes | None) -> Response:
    """A POST on a journey under way: the step the form names, then the page for the next step."""
    action = fields.get("action", "confirm")
    now = utcnow()
    # a self-service key may be replaced until the code is typed (a lost passphrase: a new certificate)
    replaceable = (journey.step is Step.ADDRESS_CONFIRMED or journey.key_kind is not None) and \
        listed(flow.directory, journey.organisation, journey.recipient) is not None
    if action == "upload" and replaceable and flow.config is not None:
        try:
            offered = await run_in_threadpool(flow.offer_checks, journey, upload or b"")
        except KeyRefused as refused:
            return await flow.show(journey, extra=ui.refusal(str(refused)), status=400)
        return await _provided(flow, token, offered, source="upload", now=now)
    if action == "issue" and replaceable and flow.may_issue(journey.organisation):
        try:
            offered, bundle, passphrase = await run_in_threadpool(flow.issue, journey)
        except KeyRefused as refused:
            return await flow.show(journey, extra=ui.refusal(str(refused)), status=400)
        assert flow.config is not None and journey.email is not None
        try:
            async with SmtpSender(smtp_settings(flow.config.delivery)) as sender:
                await send_pkcs12(sender, flow.config.delivery, journey.email, bundle,
                                  organisation_name=_plain_name(flow.config, journey.organisation), now=now)
        except DeliveryError:
            return await flow.show(journey, extra=ui.refusal("Certifikatet kunne ikke sendes lige nu; prøv igen "
                                                             "om lidt."), status=503)
        return await _provided(flow, token, offered, source="issued", now=now, extra=ui.passphrase_box(passphrase))
    if action == "resend" and journey.key_kind is not None:
        sent = await flow.send_test(journey)
        fresh = await run_in_threadpool(lambda: open_journey(flow.store, token, flow.directory, now=utcnow()))
        return await flow.show(fresh or journey, lead="Et nyt testbrev er sendt; kun den nyeste kode virker."
                               if sent else "")
    if action == "code" and journey.step is Step.TEST_LETTER_SENT:
        try:
            await run_in_threadpool(lambda: confirm_test_code(flow.store, token, fields.get("code", ""), flow.directory,
                                                              now=utcnow(), trust_store=flow.trust_store))
        except OnboardingError as exc:
            return await flow.show(journey, extra=ui.refusal(str(exc)), status=400)
        return ui.page("Godkendt", "Tak. Koden passer: du modtager nu din digitale post krypteret til din nøgle. "
                       "Du kan lukke siden.", step=Step.APPROVED)
    return await flow.show(journey, status=400)


async def _provided(flow: _Flow, token: str, offered: OfferedKey, *, source: str, now: dt.datetime,
                    extra: str = "") -> Response:
    try:
        journey = await run_in_threadpool(lambda: provide_key(flow.store, token, offered, source=source, now=now))
    except OnboardingError as exc:
        return ui.page("Ikke modtaget", str(exc), status=404)
    sent = await flow.send_test(journey)
    fresh = await run_in_threadpool(lambda: open_journey(flow.store, token, flow.directory, now=utcnow()))
    kind = "certifikat" if offered.kind is KeyKind.SMIME else "OpenPGP-nøgle"
    done = (f"Dit certifikat er udstedt og sendt til {journey.email} som fil. Importér den med adgangskoden "
            "herunder;" if source == "issued" else f"Dit {kind} er i orden.")
    lead = f"{done} Vi har sendt et testbrev krypteret til det; åbn det og skriv koden her." if sent else ""
    return await flow.show(fresh or journey, lead=lead, extra=extra)


def confirm_route(store: Store, *, directory: Callable[[], RecipientsFile | None] | None = None,
                  trust_store: Path | None = None, config: Callable[[], Config] | None = None) -> Route:
    """GET shows the step the link is on; POST takes it (mail scanners that prefetch links do nothing).

    With `directory` (a callable returning the current recipients file), a recipient whose key the
    file names is approved on confirmation when it checks out; with `config`, a recipient without one
    gives a key here (or is issued one) and confirms the code of a test letter encrypted to it.
    """

    async def endpoint(request: Request) -> Response:
        token = str(request.path_params["token"])
        flow = _Flow(store, config() if config else None, directory() if directory else None, trust_store)
        journey = await run_in_threadpool(lambda: open_journey(store, token, flow.directory, now=utcnow()))
        if journey is None:
            return ui.page(*_GONE, status=404)
        if request.method == "GET":
            return await flow.show(journey)
        try:
            fields, upload = await _posted(request)
        except KeyRefused as refused:
            return await flow.show(journey, extra=ui.refusal(str(refused)), status=413)
        if fields.get("action", "confirm") != "confirm" or journey.step is not Step.INVITED:
            return await _act(flow, token, journey, fields, upload)
        try:
            await run_in_threadpool(lambda: confirm(store, token, trust_store=trust_store, directory=flow.directory))
        except ApprovalError as exc:
            return ui.page("Ikke bekræftet", str(exc), status=404)
        after = await run_in_threadpool(lambda: open_journey(store, token, flow.directory, now=utcnow()))
        if after is None:  # approved at once: the file names a key that checks out
            return ui.page("Bekræftet", "Tak. Din adresse er bekræftet; du kan lukke siden.", step=Step.APPROVED)
        return await flow.show(after, lead="Bekræftet. " + ("Din adresse er bekræftet; giv os nu din offentlige "
                                                              "nøgle." if after.step is Step.ADDRESS_CONFIRMED else ""))

    return Route("/recipients/confirm/{token}", endpoint, methods=["GET", "POST"])
