"""A faithful fake of the NgDP REST API for recipient systems (`/apis/v1`, PROTOCOLS.md §3.4 and §4.3).

Emulated: mutual TLS (no client certificate -> 401, a certificate of another system -> 403) plus
`Authorization: Basic base64(systemId:apiToken)` (wrong -> 401); `GET memos/` as `PagingResultUUID`
with zero-based pages; `GET memos/{uuid}` as MeMo XML in the system's configured version (1.1 or
1.2) with `Range` -> 206 / 416; `POST memos/{uuid}/receipt` validating the `Receipt` (422 invalid,
409 duplicate); `DELETE memos/{uuid}` (204, then 404 or 409 again, configurable since the real code
is unknown); the sender flow `POST memos/?memo-message-uuid=` (query uuid must equal the header
uuid, the MeMo must validate; 201 with a `Receipt`); `ErrorMessage {code, message, fieldErrors}` on
every error. Faults (503, 429, latency, ...) come from the shared `sandbox` middleware.
One system may serve several CVRs (its organisation's and delegated ones): it lists all of them.
"""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from sandbox.fake import FakeProvider
from sandbox.server import STATE_CLIENT_CN, ClientCerts
from core.domain import NormalizedMessage
from sandbox.testca import IssuedCert, LocalCA

API = "/apis/v1"
MAX_PAGE_SIZE = 1000
RECEIPT_STATUSES = frozenset({"NOT_ALLOWED", "INVALID", "RECEIVED", "COMPLETED"})
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
_SORT = re.compile(r"^[A-Za-z]+,(asc|desc)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def error(status: int, code: str, message: str,
          field_errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    """NgDP's `ErrorMessage` body."""
    return JSONResponse({"code": code, "message": message, "fieldErrors": field_errors or []},
                        status_code=status)


class NgdpFake(FakeProvider):
    """The fake NgDP; `system_id`, `api_token` and the client certificate's CN identify the system."""

    name = "ngdp"
    client_certs = ClientCerts.OPTIONAL
    base_path = API

    def __init__(self, *, system_id: str, api_token: str, client_cn: str, memo_version: str = "1.1",
                 redelete_status: int = 404, client_cert: IssuedCert | None = None,
                 seed: int = 0) -> None:
        super().__init__(seed=seed)
        if memo_version not in ("1.1", "1.2"):
            raise ValueError("memo_version must be 1.1 or 1.2")
        if redelete_status not in (404, 409):
            raise ValueError("redelete_status must be 404 or 409 (the two documented codes)")
        self.system_id = system_id
        self.api_token = api_token
        self.client_cn = client_cn
        self.client_cert = client_cert
        self.memo_version = memo_version
        self.redelete_status = redelete_status
        self.receipts: dict[str, dict[str, Any]] = {}
        self.sent: dict[str, bytes] = {}
        self._deleted: set[str] = set()
        self.peeks = 0  # bounded Range requests (header peeks)
        self._rendered: dict[str, bytes] = {}

    def reset(self) -> None:
        super().reset()
        self.receipts.clear()
        self.sent.clear()
        self._deleted.clear()
        self._rendered.clear()

    def key_for(self, message: NormalizedMessage) -> str:
        return message.message_id.lower()

    def memo_bytes(self, key: str) -> bytes:
        """The MeMo this fake serves for a stored message (rendered once, then cached)."""
        if key not in self._rendered:
            from connectors.memo.writer import build_memo

            self._rendered[key] = build_memo(self.messages[key].message, version=self.memo_version)
        if key in self.poisoned:
            # The header (and its recipient) stays readable; an unknown MeMo version makes the
            # whole memo unusable, as a sender's broken MeMo library would.
            version = f'memoVersion="{self.memo_version}"'.encode()
            return self._rendered[key].replace(version, b'memoVersion="0.9"', 1)
        return self._rendered[key]

    def credentials(self) -> dict[str, str]:
        creds = {"system_id": self.system_id, "api_token": self.api_token}
        if self.client_cert is not None:
            creds["client_cert"] = str(self.client_cert.cert_path)
            creds["client_key"] = str(self.client_cert.key_path)
        return creds

    # -- HTTP ------------------------------------------------------------------------------
    def build_app(self) -> ASGIApp:
        return Starlette(routes=[
            Route(f"{API}/memos/", self._list, methods=["GET"]),
            Route(f"{API}/memos/", self._send, methods=["POST"]),
            Route(API + "/memos/{uuid}", self._fetch, methods=["GET"]),
            Route(API + "/memos/{uuid}", self._delete, methods=["DELETE"]),
            Route(API + "/memos/{uuid}/receipt", self._receipt, methods=["POST"]),
        ])

    def _auth(self, request: Request) -> Response | None:
        cn = request.scope.get("state", {}).get(STATE_CLIENT_CN)
        if cn is None:
            return error(401, "UNAUTHORIZED", "client certificate required")
        if cn != self.client_cn:
            return error(403, "FORBIDDEN", "certificate is not registered for a system")
        expected = base64.b64encode(f"{self.system_id}:{self.api_token}".encode()).decode()
        if self.auth_broken or request.headers.get("authorization") != f"Basic {expected}":
            # A 401 has no body contract in NgDP; an empty body keeps clients honest.
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="ngdp"'})
        return None

    async def _list(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        try:
            page = int(request.query_params.get("page", "0"))
            size = int(request.query_params.get("size", "20"))
        except ValueError:
            return error(400, "BAD_REQUEST", "page and size must be integers")
        if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
            return error(400, "BAD_REQUEST", f"page must be >= 0 and size within 1..{MAX_PAGE_SIZE}",
                         [{"resource": "memos", "field": "size", "code": "RANGE", "message": "out of range",
                           "rejectedValue": str(size)}])
        sorts = request.query_params.getlist("sort")
        if any(not _SORT.match(s) for s in sorts):
            return error(400, "BAD_REQUEST", "sort must be property,asc|desc")
        keys = [s.key for s in self.pending()]
        if sorts and sorts[0].endswith(",desc"):
            keys.reverse()
        total = len(keys)
        pages = (total + size - 1) // size
        content = keys[page * size:(page + 1) * size]
        ordering = sorts[0] if sorts else None
        return JSONResponse({
            "content": content,
            "number": page,
            "size": size,
            "previous": {"page": page - 1, "size": size, "ordering": ordering} if page > 0 else None,
            "next": {"page": page + 1, "size": size, "ordering": ordering} if page + 1 < pages else None,
            "totalElements": total,
            "totalPages": pages,
        })

    def _known(self, key: str) -> bool:
        return key in self.messages and not self.is_acknowledged(key)

    async def _fetch(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.path_params["uuid"].lower()
        if not _UUID4.match(key):
            return error(400, "BAD_REQUEST", "id must be a UUID")
        if not self._known(key):
            return error(404, "NOT_FOUND", "memo not found")
        body = self.memo_bytes(key)
        headers = {"Accept-Ranges": "bytes"}
        range_header = request.headers.get("range")
        if range_header is None:
            self.record_fetch(key)
            return Response(body, media_type="application/xml", headers=headers)
        span = _parse_range(range_header, len(body))
        if span is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{len(body)}"})
        start, end = span
        if not _open_ended(range_header):
            self.peeks += 1  # a bounded range is a header peek
        if _open_ended(range_header) or (start == 0 and end == len(body) - 1):
            self.record_fetch(key)  # a resumed download, or a peek that transferred all of it
        headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
        return Response(body[start:end + 1], status_code=206, media_type="application/xml",
                        headers=headers)

    async def _delete(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.path_params["uuid"].lower()
        if key in self._deleted:
            return error(self.redelete_status, "ALREADY_DELETED" if self.redelete_status == 409
                         else "NOT_FOUND", "memo already deleted")
        if key not in self.messages:
            return error(404, "NOT_FOUND", "memo not found")
        self._deleted.add(key)
        self.record_ack(key)
        return Response(status_code=204)

    async def _receipt(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.path_params["uuid"].lower()
        if not self._known(key):
            return error(404, "NOT_FOUND", "memo not found")
        try:
            receipt = json.loads(await request.body())
        except ValueError:
            return error(400, "BAD_REQUEST", "body is not JSON")
        problems = _receipt_problems(receipt, key)
        if problems:
            return error(422, "INVALID_RECEIPT", "receipt is invalid", problems)
        if key in self.receipts:
            return error(409, "DUPLICATE_RECEIPT", "a business receipt exists for this memo")
        self.receipts[key] = receipt
        return Response(status_code=200)

    async def _send(self, request: Request) -> Response:
        """The sender flow: validates a MeMo (e.g. a reply) and answers with a `Receipt`."""
        if (denied := self._auth(request)) is not None:
            return denied
        query_uuid = (request.query_params.get("memo-message-uuid") or "").lower()
        if request.headers.get("content-type", "").split(";")[0] not in ("application/xml", "text/xml"):
            return error(400, "BAD_REQUEST", "Content-Type must be application/xml or text/xml")
        raw = await request.body()
        from connectors.memo import MemoError, parse_memo

        try:
            message = parse_memo(raw)
        except MemoError as exc:
            return error(400, "INVALID_MEMO", str(exc))
        if message.message_id.lower() != query_uuid:
            return error(400, "BAD_REQUEST", "memo-message-uuid does not match MessageHeader/messageUUID",
                         [{"resource": "memos", "field": "memo-message-uuid", "code": "MISMATCH",
                           "message": "must equal messageUUID", "rejectedValue": query_uuid}])
        self.sent[query_uuid] = raw
        return JSONResponse(_receipt_for(query_uuid, message), status_code=201)


def _parse_range(value: str, length: int) -> tuple[int, int] | None:
    match = _RANGE.match(value.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # suffix range: the last N bytes
        start, end = max(0, length - int(match.group(2))), length - 1
    else:
        start = int(match.group(1))
        end = min(int(match.group(2)), length - 1) if match.group(2) else length - 1
    if start >= length or start > end:
        return None
    return start, end


def _open_ended(value: str) -> bool:
    return value.strip().endswith("-")


def _receipt_problems(receipt: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(receipt, dict):
        return [{"resource": "receipt", "field": "", "code": "TYPE", "message": "must be an object"}]
    problems = []

    def bad(name: str, message: str) -> None:
        problems.append({"resource": "receipt", "field": name, "code": "INVALID", "message": message,
                         "rejectedValue": str(receipt.get(name))})

    if str(receipt.get("messageUUID", "")).lower() != key:
        bad("messageUUID", "must equal the memo's uuid")
    if receipt.get("receiptStatus") not in RECEIPT_STATUSES:
        bad("receiptStatus", f"must be one of {sorted(RECEIPT_STATUSES)}")
    if not _UUID4.match(str(receipt.get("transmissionId", ""))):
        bad("transmissionId", "must be a UUID v4")
    stamp = str(receipt.get("timeStamp", ""))
    try:
        if not stamp.endswith("Z"):
            raise ValueError(stamp)
        datetime.fromisoformat(stamp[:-1])
    except ValueError:
        bad("timeStamp", "must be an ISO date-time ending in Z")
    return problems


def _receipt_for(message_uuid: str, message: NormalizedMessage) -> dict[str, Any]:
    return {
        "transmissionId": str(uuid.uuid4()),
        "messageUUID": message_uuid,
        "messageId": message.content_data.get("memo_message_id"),
        "errorCode": None,
        "errorMessage": None,
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "receiptStatus": "RECEIVED",
    }


def make_fake(*, folder: Path, ca: LocalCA, seed: int = 0) -> NgdpFake:
    """The sandbox factory: a fake system with generated credentials and a client certificate."""
    rng = random.Random(f"ngdp-credentials:{seed}")
    system_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    token = base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("=")
    cn = f"ngdp-system-{system_id[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    return NgdpFake(system_id=system_id, api_token=token, client_cn=cn,
                    client_cert=ca.issue(cn, client=True), seed=seed)
