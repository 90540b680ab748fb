"""Downloads one memo, resuming with `Range` (206) when the connection drops part-way."""

from __future__ import annotations

import re

import httpx

from connectors.base import PermanentError, TransientError
from connectors.ngdp.errors import status_error, translated

MAX_RESUMES = 3
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


async def download(client: httpx.AsyncClient, path: str, *, max_bytes: int) -> bytes:
    """The whole body of `GET path` as MeMo XML; raises only `ConnectorError`s."""
    data = bytearray()
    resumes = 0
    while True:
        headers = {"Accept": "application/xml"}
        if data:
            headers["Range"] = f"bytes={len(data)}-"
        with translated("fetch"):
            try:
                total = await _one_request(client, path, headers, data, max_bytes)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # Only a body cut short is resumable: we got something and may still retry.
                if not data or resumes >= MAX_RESUMES:
                    raise
                resumes += 1
                continue
        if total is not None and len(data) != total:
            raise TransientError(f"NgDP fetch: got {len(data)} of {total} bytes")
        return bytes(data)


async def _one_request(client: httpx.AsyncClient, path: str, headers: dict[str, str],
                       data: bytearray, max_bytes: int) -> int | None:
    """Appends this response's body to `data`; returns the memo's full size when known."""
    async with client.stream("GET", path, headers=headers) as response:
        if response.status_code not in (200, 206):
            await response.aread()
            raise status_error(response, "fetch")
        ctype = response.headers.get("content-type", "")
        if "xml" not in ctype:
            # An HTML page where MeMo belongs is a proxy or maintenance page, not a bad memo.
            raise TransientError(f"NgDP fetch: expected XML, got {ctype.split(';')[0] or 'no type'}")
        total = _expected_total(response, data)
        if total is not None and total > max_bytes:
            raise PermanentError(f"NgDP fetch: memo of {total} bytes exceeds max_memo_bytes")
        async for chunk in response.aiter_bytes():
            data.extend(chunk)
            if len(data) > max_bytes:
                raise PermanentError("NgDP fetch: memo exceeds max_memo_bytes")
        return total


def _expected_total(response: httpx.Response, data: bytearray) -> int | None:
    if response.status_code == 200:
        data.clear()  # the server ignored our Range: this is the whole memo again
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or int(match.group(1)) != len(data):
        raise TransientError("NgDP fetch: the 206 answer does not continue where the download stopped")
    return None if match.group(3) == "*" else int(match.group(3))
