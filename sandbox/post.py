"""Fake print-and-mail provider (the post channel's counterpart): keeps every letter it is sent under
`<folder>/` as `<id>.pdf` with `<id>.json` (address, reference, status, price)."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PRICE = 12.50  # DKK per letter, as a provider's price list would say
CURRENCY = "DKK"


@dataclass
class FakeLetter:
    id: str
    reference: str
    address: dict[str, Any]
    name: str
    status: str = "valid"
    price_value: float = PRICE
    price_currency: str = CURRENCY
    polls: int = 0
    product: str | None = None


@dataclass
class FakePost:
    """The provider's state; `app` serves it. Letters turn `sent` after `polls_until_sent` status reads."""

    folder: Path
    client_id: str = "postbud-sandbox"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    organisation: str = "sandbox-org"
    polls_until_sent: int = 1
    fail_next: bool = False  # the next letter sent ends `undeliverable`
    letters: dict[str, FakeLetter] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret, "organisation": self.organisation}

    @property
    def app(self) -> Starlette:
        org = "/organisations/{org}/letters"
        return Starlette(routes=[
            Route("/auth/access-tokens", self._token, methods=["POST"]),
            Route("/file-upload", self._upload_url, methods=["GET"]),
            Route("/uploads/{upload}", self._upload, methods=["PUT"]),
            Route(org, self._letters, methods=["GET", "POST"]),
            Route(org + "/{id}/send", self._send, methods=["PATCH"]),
            Route(org + "/{id}", self._status, methods=["GET"]),
        ])

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
                "client_credentials", self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.tokens and request.path_params.get("org", self.organisation) \
            == self.organisation

    async def _upload_url(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        upload = secrets.token_hex(8)
        url = f"{request.base_url}uploads/{upload}"
        return JSONResponse({"data": {"attributes": {"url": url, "url_signature": f"sig-{upload}"}}})

    async def _upload(self, request: Request) -> Response:
        self.uploads[request.path_params["upload"]] = await request.body()
        return Response(status_code=200)

    async def _letters(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        if request.method == "GET":
            ref = request.query_params.get("filter[reference]")
            return JSONResponse({"data": [self._view(x) for x in self.letters.values() if x.reference == ref]})
        attributes = (await request.json())["data"]["attributes"]
        upload = str(attributes["file_url"]).rsplit("/", 1)[-1]
        if upload not in self.uploads or attributes.get("file_url_signature") != f"sig-{upload}":
            return JSONResponse({"error": "file not uploaded"}, status_code=422)
        pdf = self.uploads.pop(upload)
        if not pdf.startswith(b"%PDF"):
            return JSONResponse({"error": "not a PDF"}, status_code=422)
        with self._lock:
            letter = FakeLetter(secrets.token_hex(8), str(attributes["meta_data"]["reference"]),
                                dict(attributes["recipient_address"]), str(attributes["file_original_name"]))
            self.letters[letter.id] = letter
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{letter.id}.pdf").write_bytes(pdf)
            self._keep(letter)
        return JSONResponse({"data": self._view(letter)}, status_code=201)

    async def _send(self, request: Request) -> Response:
        letter = self.letters.get(request.path_params["id"])
        if not self._authorised(request) or letter is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        letter.product = (await request.json())["data"]["attributes"].get("delivery_product")
        letter.status = "undeliverable" if self.fail_next else "submitted"
        self.fail_next = False
        self._keep(letter)
        return JSONResponse({"data": self._view(letter)})

    async def _status(self, request: Request) -> Response:
        letter = self.letters.get(request.path_params["id"])
        if not self._authorised(request) or letter is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        letter.polls += 1
        if letter.status == "submitted" and letter.polls >= self.polls_until_sent:
            letter.status = "sent"
            self._keep(letter)
        return JSONResponse({"data": self._view(letter)})

    def _view(self, letter: FakeLetter) -> dict[str, Any]:
        return {"id": letter.id, "type": "letters", "attributes": {
            "status": letter.status, "price_value": letter.price_value, "price_currency": letter.price_currency,
            "file_original_name": letter.name}}

    def _keep(self, letter: FakeLetter) -> None:
        (self.folder / f"{letter.id}.json").write_text(json.dumps(asdict(letter), ensure_ascii=False, indent=2),
                                                       encoding="utf-8")
