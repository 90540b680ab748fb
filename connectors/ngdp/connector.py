"""The Digital Post (NgDP) recipient-system connector: REST pull of MeMo messages (PROTOCOLS.md §3.4).

Obligations are those of `connectors.base.Connector`. NgDP specifics: mutual TLS with the
organisation's system certificate plus `Authorization: Basic base64(systemId:apiToken)`; the
listing (`GET memos/`) is zero-based pages of memo UUIDs for everything the system receives; a
system may serve several CVRs, so when `cvrs` is a list the connector reads each listed memo's
header through a small `Range` request (206) and keeps only memos to those CVRs, leaving the rest on
the server for the mailbox that owns them (each memo's header is read once: other CVRs' memos are
remembered in the mailbox state, and a memo the peek read whole is not downloaded again); a download cut short resumes with `Range` from the last
byte received; acknowledge = business receipt (when configured) then `DELETE memos/{uuid}`, where
404/409 on a repeat mean "already done".
"""

from __future__ import annotations

import base64
import logging
import math
import re
import ssl
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, field_validator

from connectors.base import (
    AcknowledgePolicy,
    AuthError,
    Capability,
    ConnectorContext,
    ConnectorSettings,
    Fetched,
    MessageRef,
    Page,
    PermanentError,
    TransientError,
)
from connectors.memo import build_memo
from core.domain import NormalizedMessage
from connectors.ngdp.download import download
from connectors.ngdp.errors import status_error, translated
from core.settings import is_cvr

log = logging.getLogger(__name__)

_RECIPIENT_ID = re.compile(rb"<(?:[\w.-]+:)?Recipient\b.*?<(?:[\w.-]+:)?recipientID>\s*([^<\s]+)\s*<", re.DOTALL)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class NgdpSettings(ConnectorSettings):
    """One NgDP recipient system (`type = "ngdp"`); `api_token` arrives resolved, never a reference."""

    base_url: str = "https://api.digitalpost.dk/apis/v1"
    system_id: str
    api_token: str = Field(repr=False)
    client_cert: Path
    client_key: Path
    ca_file: Path | None = None
    cvrs: tuple[str, ...] | Literal["all"] = "all"
    business_receipt: bool = False
    page_size: int = Field(default=100, ge=1, le=1000)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    header_peek_bytes: int = Field(default=16_384, ge=1024)
    max_memo_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)

    @field_validator("cvrs")
    @classmethod
    def _cvrs_are_cvr_numbers(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if value == "all":
            return value
        bad = [v for v in value if not is_cvr(v)]
        if bad or not value:
            raise ValueError(f'cvrs must be "all" or a non-empty list of 8-digit CVR numbers, got {bad}')
        return value

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("base_url must be an https:// URL (NgDP is mutual TLS only)")
        return value.rstrip("/")


Settings = NgdpSettings  # the name the connector contract gives a connector's settings model


class NgdpConnector:
    """Collects the memos one NgDP recipient system receives, for the configured CVR(s)."""

    name: ClassVar[str] = "ngdp"
    Settings: ClassVar[type[ConnectorSettings]] = NgdpSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.REPLY})
    default_acknowledge: ClassVar[AcknowledgePolicy] = AcknowledgePolicy.AFTER_DELIVERY

    def __init__(self, settings: NgdpSettings, context: ConnectorContext | None = None) -> None:
        self.settings = settings
        self.context = context
        self._client: httpx.AsyncClient | None = None
        self._recipients: dict[str, str | None] = {}  # memo uuid -> recipient CVR, from header peeks
        self._bodies: dict[str, bytes] = {}  # memos of ours that a peek read whole: no second download
        self._foreign: dict[str, str] | None = None  # other CVRs' memos, kept in the mailbox state
        self._deleted_since_listing = 0

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self.settings
            try:
                tls = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
                tls.load_cert_chain(str(s.client_cert), str(s.client_key))
            except (OSError, ssl.SSLError) as exc:
                raise AuthError(f"NgDP: cannot load the system certificate or CA file ({type(exc).__name__})") from exc
            token = base64.b64encode(f"{s.system_id}:{s.api_token}".encode()).decode()
            self._client = httpx.AsyncClient(
                base_url=s.base_url + "/",
                verify=tls,
                headers={"Authorization": f"Basic {token}", "User-Agent": "postbud-ngdp"},
                timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            )
        return self._client

    async def list_new(self, cursor: str | None) -> Page:
        page = int(cursor) if cursor and cursor.isdigit() else 0
        # NgDP pages by number over what is still there, so every memo deleted since the last
        # page moves later memos one place forward; stepping back as many pages as that could
        # fill keeps them from being skipped (re-listed ones are deduplicated by the collector).
        page = max(0, page - math.ceil(self._deleted_since_listing / self.settings.page_size))
        self._deleted_since_listing = 0
        params = {"page": str(page), "size": str(self.settings.page_size), "sort": "receivedDateTime,asc"}
        with translated("list"):
            response = await self._http().get("memos/", params=params)
        if response.status_code != 200:
            raise status_error(response, "list")
        uuids, more = _paging(response)
        refs = []
        failed: TransientError | None = None
        for memo_uuid in uuids:
            try:
                cvr = await self._recipient(memo_uuid)
            except TransientError as exc:
                # One failed header peek costs only its memo: it is listed (peeked again) next time.
                failed = exc
                continue
            # A memo whose recipient cannot be read is listed anyway: fetching it raises
            # PermanentError, so a person sees it instead of it waiting unseen on the server.
            if self.settings.cvrs == "all" or cvr is None or cvr in self.settings.cvrs:
                refs.append(MessageRef(key=memo_uuid, handle=memo_uuid, meta={"cvr": cvr or ""}))
        if failed is not None:
            if not refs and all(u not in self._recipients for u in uuids):
                raise failed  # nothing on this page could be read: the provider is failing, say so
            log.warning("NgDP list: a memo header could not be read (%s); that memo is listed again next poll", failed)
        return Page(refs=tuple(refs), cursor=str(page + 1) if more else None, more=more)

    async def _recipient(self, memo_uuid: str) -> str | None:
        """The memo's recipient CVR from its header via a Range request (only when filtering).

        None when the header names none in its first `header_peek_bytes`; "" when the memo is gone.
        """
        if self.settings.cvrs == "all":
            return None
        foreign = await self._foreign_memos()
        if memo_uuid in foreign:
            return foreign[memo_uuid]
        if memo_uuid not in self._recipients:
            limit = self.settings.header_peek_bytes
            with translated("list"):
                response = await self._http().get(
                    f"memos/{memo_uuid}", headers={"Accept": "application/xml", "Range": f"bytes=0-{limit - 1}"})
            if response.status_code == 404:
                return ""  # deleted meanwhile: nothing to list
            if response.status_code not in (200, 206):
                raise status_error(response, "list")
            if "xml" not in response.headers.get("content-type", ""):
                # Never conclude "no recipient" from a proxy's page: that answer is cached.
                raise TransientError("NgDP list: a memo header came back as something other than XML")
            match = _RECIPIENT_ID.search(response.content)
            if match is None:
                log.warning("NgDP memo %s: no recipientID in its first %d bytes", memo_uuid, limit)
            cvr = match.group(1).decode("ascii", "replace") if match else None
            self._recipients[memo_uuid] = cvr
            if cvr and cvr not in self.settings.cvrs:
                await self._remember_foreign(memo_uuid, cvr)
            elif _whole(response) and len(self._bodies) < _MAX_KEPT_BODIES:
                self._bodies[memo_uuid] = response.content
        return self._recipients[memo_uuid]

    async def _foreign_memos(self) -> dict[str, str]:
        if self._foreign is None:
            state = await self.context.state.load() if self.context is not None else {}
            stored = state.get("foreign")
            self._foreign = {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
        return self._foreign

    async def _remember_foreign(self, memo_uuid: str, cvr: str) -> None:
        """Another CVR's memo stays on the server for its owner: never peek at it again."""
        foreign = await self._foreign_memos()
        foreign[memo_uuid] = cvr
        while len(foreign) > _MAX_FOREIGN:
            foreign.pop(next(iter(foreign)))  # the oldest first: dicts keep insertion order
        if self.context is not None:
            state = dict(await self.context.state.load())
            state["foreign"] = foreign
            await self.context.state.save(state)

    async def fetch(self, ref: MessageRef) -> Fetched:
        from connectors import watchdog
        from connectors.memo import MemoError, parse_memo

        raw = self._bodies.pop(ref.key, None)
        if raw is None:
            raw = await download(self._http(), _memo_path(ref), max_bytes=self.settings.max_memo_bytes)
        try:
            # In a killable worker under the letter budget: any Digital Post sender controls these bytes.
            message = await watchdog.run(parse_memo, raw)
        except (MemoError, PermanentError) as exc:
            raise PermanentError(f"NgDP memo {ref.key}: {exc}", raw=raw) from exc
        if message.message_id.lower() != ref.key.lower():
            raise PermanentError(f"NgDP memo {ref.key}: messageUUID in the memo differs", raw=raw)
        return Fetched(ref=ref, raw=raw, raw_media_type="application/xml", message=message)

    async def acknowledge(self, ref: MessageRef) -> None:
        if self.settings.business_receipt and not await self._receipt(ref):
            self._recipients.pop(ref.key, None)
            return  # 404: the memo is already gone, nothing left to delete
        with translated("delete"):
            response = await self._http().delete(_memo_path(ref))
        # 404/409 on a repeated delete mean it is already gone: acknowledging twice is harmless.
        if response.status_code not in (200, 204, 404, 409):
            raise status_error(response, "delete")
        if response.status_code in (200, 204):
            self._deleted_since_listing += 1
        self._recipients.pop(ref.key, None)

    async def _receipt(self, ref: MessageRef) -> bool:
        """Posts the business receipt; False when the memo no longer exists."""
        body = {
            "transmissionId": str(uuid.uuid4()),
            "messageUUID": ref.key,
            "messageId": None,
            "errorCode": None,
            "errorMessage": None,
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "receiptStatus": "COMPLETED",
        }
        with translated("receipt"):
            response = await self._http().post(f"{_memo_path(ref)}/receipt", json=body)
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 201, 204, 409):  # 409: receipted before
            raise status_error(response, "receipt")
        return True

    async def send_reply(self, reply: NormalizedMessage) -> dict[str, Any]:
        """`Replier`: the reply as a MeMo (ReplyData pointing at the original), sent with its own UUID."""
        return await self.send_memo(build_memo(reply), message_uuid=reply.message_id)

    async def send_memo(self, raw: bytes, *, message_uuid: str) -> dict[str, Any]:
        """Sends one MeMo (e.g. a reply built by `connectors.memo.build_memo`); returns NgDP's Receipt."""
        if not _UUID.match(message_uuid):
            raise PermanentError("NgDP send: message_uuid must be a UUID", raw=raw)
        with translated("send"):
            response = await self._http().post(
                "memos/", params={"memo-message-uuid": message_uuid}, content=raw,
                headers={"Content-Type": "application/xml"})
        if response.status_code not in (200, 201):
            raise status_error(response, "send", raw=raw)
        try:
            receipt = response.json()
        except ValueError as exc:
            raise TransientError("NgDP send: the receipt is not JSON") from exc
        return receipt if isinstance(receipt, dict) else {}

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with translated("close"):
                await client.aclose()


_MAX_KEPT_BODIES = 500
_MAX_FOREIGN = 50_000


def _whole(response: httpx.Response) -> bool:
    """Did the header peek return the entire memo (a 200, or a 206 whose range is all of it)?"""
    if response.status_code == 200:
        return True
    match = re.match(r"^bytes 0-(\d+)/(\d+)$", response.headers.get("content-range", ""))
    return match is not None and int(match.group(1)) + 1 == int(match.group(2)) == len(response.content)


def _memo_path(ref: MessageRef) -> str:
    """The memo's path; a handle that is not a UUID (a corrupted store) never reaches the URL."""
    if not _UUID.match(ref.handle):
        raise PermanentError(f"NgDP: handle of {ref.key!r} is not a memo UUID")
    return f"memos/{ref.handle}"


def _paging(response: httpx.Response) -> tuple[list[str], bool]:
    """The uuids and whether a next page exists, from a `PagingResultUUID`."""
    if "json" not in response.headers.get("content-type", ""):
        raise TransientError("NgDP list: the reply is not JSON (a proxy or maintenance page?)")
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError("NgDP list: the reply is not valid JSON") from exc
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list) or not all(isinstance(u, str) and _UUID.match(u) for u in content):
        raise TransientError("NgDP list: the reply is not a PagingResultUUID")
    return [u.lower() for u in content], body.get("next") is not None
