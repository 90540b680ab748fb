"""The print-and-mail provider's REST API (Pingen-like): client-credentials token, upload, letter, send, status.

    POST  /auth/access-tokens                      grant_type=client_credentials (form) -> access_token
    GET   /file-upload                             -> a one-time upload url and its signature
    PUT   <upload url>                             the PDF
    POST  /organisations/{org}/letters             file url + signature, reference, recipient address
    GET   /organisations/{org}/letters?filter[reference]=REF
    PATCH /organisations/{org}/letters/{id}/send   delivery product
    GET   /organisations/{org}/letters/{id}        status, price

Only typed delivery errors leave this module (translate.py maps httpx and the statuses).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from core.config import PostSettings
from delivery.errors import PostPermanent
from delivery.recipients import PostalAddress
from delivery.translate import HTTP_FAULTS, post_status_error, post_transport_error

POSTED = frozenset({"sent", "posted", "delivered"})
FAILED = frozenset({"cancelled", "failed", "undeliverable", "action_required"})


@dataclass(frozen=True)
class Letter:
    """A letter as the provider reports it."""

    id: str
    status: str
    price: float | None
    currency: str | None

    @property
    def posted(self) -> bool:
        return self.status in POSTED

    @property
    def failed(self) -> bool:
        return self.status in FAILED


def post_client(settings: PostSettings) -> httpx.AsyncClient:
    """An HTTPS client verifying the provider against `ca_file` (default: system trust)."""
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file is not None else None)
    return httpx.AsyncClient(verify=ctx, timeout=settings.timeout_seconds, follow_redirects=False)


class PostApi:
    """One provider account; the access token is kept until shortly before it expires."""

    def __init__(self, client: httpx.AsyncClient, settings: PostSettings) -> None:
        self._client, self._settings = client, settings
        self._token: str | None = None
        self._token_until = 0.0

    async def _request(self, method: str, url: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = f"Bearer {await self._access_token()}"
        try:
            response = await self._client.request(method, url, headers=headers, **kwargs)
        except HTTP_FAULTS as exc:
            raise post_transport_error(exc) from None
        if response.status_code == 401 and auth:
            self._token = None  # an expired token: the next attempt fetches a new one
        if not 200 <= response.status_code < 300:
            raise post_status_error(response.status_code, response.text[:200])
        return response

    async def _access_token(self) -> str:
        if self._token is not None and time.monotonic() < self._token_until:
            return self._token
        s = self._settings
        response = await self._request("POST", f"{s.api_url}/auth/access-tokens", auth=False, data={
            "grant_type": "client_credentials", "client_id": s.client_id,
            "client_secret": s.client_secret.reveal()})
        body = _json(response)
        self._token = str(body["access_token"])
        self._token_until = time.monotonic() + max(0.0, float(body.get("expires_in", 300)) - 30)
        return self._token

    def _letters(self) -> str:
        return f"{self._settings.api_url}/organisations/{self._settings.organisation}/letters"

    async def find(self, reference: str) -> Letter | None:
        """The letter filed under our reference, if an earlier attempt created it."""
        body = _json(await self._request("GET", self._letters(), params={"filter[reference]": reference}))
        found = body.get("data") or []
        return _letter(found[0]) if found else None

    async def create(self, pdf: bytes, name: str, reference: str, address: PostalAddress) -> Letter:
        """Upload the PDF and file a letter for it (not sent yet)."""
        upload = _json(await self._request("GET", f"{self._settings.api_url}/file-upload"))["data"]["attributes"]
        await self._request("PUT", upload["url"], auth=False, content=pdf,
                            headers={"Content-Type": "application/pdf"})
        attributes = {"file_original_name": name, "file_url": upload["url"],
                      "file_url_signature": upload["url_signature"], "auto_send": False,
                      "meta_data": {"reference": reference}, "recipient_address": address.model_dump()}
        body = _json(await self._request("POST", self._letters(),
                                         json={"data": {"type": "letters", "attributes": attributes}}))
        return _letter(body["data"])

    async def send(self, letter_id: str) -> Letter:
        body = {"data": {"type": "letters", "attributes": {"delivery_product": self._settings.delivery_product}}}
        return _letter(_json(await self._request("PATCH", f"{self._letters()}/{letter_id}/send", json=body))["data"])

    async def status(self, letter_id: str) -> Letter:
        return _letter(_json(await self._request("GET", f"{self._letters()}/{letter_id}"))["data"])


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PostPermanent("print provider answered with something that is not JSON") from None
    if not isinstance(body, dict):
        raise PostPermanent("print provider answered with unexpected JSON")
    return body


def _letter(data: dict[str, Any]) -> Letter:
    attributes = data.get("attributes") or {}
    price = attributes.get("price_value")
    return Letter(str(data["id"]), str(attributes.get("status", "unknown")),
                  float(price) if isinstance(price, (int, float)) else None,
                  str(attributes["price_currency"]) if attributes.get("price_currency") else None)
