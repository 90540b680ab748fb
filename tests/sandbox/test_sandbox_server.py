"""serve_tls: a real TLS server on 127.0.0.1 in the test's loop, client certs, and the fault middleware."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.faults import Fault, FaultMiddleware, Faults
from sandbox.server import STATE_CLIENT_CN, ClientCerts, serve_tls
from sandbox.testca import LocalCA


async def _whoami(request: Request) -> JSONResponse:
    return JSONResponse({"cn": request.scope["state"].get(STATE_CLIENT_CN), "pad": "x" * 2000})


APP = Starlette(routes=[Route("/", _whoami)])


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "ca")


def _tls(ca: LocalCA, client: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    if client:
        issued = ca.issue(client, client=True)
        context.load_cert_chain(str(issued.cert_path), str(issued.key_path))
    return context


async def test_serves_https_on_loopback_and_names_the_client(ca: LocalCA) -> None:
    async with serve_tls(APP, ca=ca, client_certs=ClientCerts.OPTIONAL) as url:
        assert url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=_tls(ca, "system-a")) as client:
            assert (await client.get(url + "/")).json()["cn"] == "system-a"
        async with httpx.AsyncClient(verify=_tls(ca)) as client:
            assert (await client.get(url + "/")).json()["cn"] is None
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(verify=_tls(ca)) as client:
            await client.get(url + "/")  # stopped when the block ended


async def test_required_client_certificate_refuses_anonymous_clients(ca: LocalCA) -> None:
    async with serve_tls(APP, ca=ca, client_certs=ClientCerts.REQUIRED) as url:
        async with httpx.AsyncClient(verify=_tls(ca, "system-b")) as client:
            assert (await client.get(url + "/")).status_code == 200
        async with httpx.AsyncClient(verify=_tls(ca)) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(url + "/")


@pytest.fixture
async def faulty(ca: LocalCA) -> AsyncIterator[tuple[Faults, httpx.AsyncClient, str]]:
    faults = Faults()
    async with (serve_tls(FaultMiddleware(APP, faults), ca=ca) as url,
                httpx.AsyncClient(verify=_tls(ca), timeout=5) as client):
        yield faults, client, url + "/"


async def test_rate_limit_fault_has_retry_after(faulty: tuple[Faults, httpx.AsyncClient, str]) -> None:
    faults, client, url = faulty
    faults.inject(Fault.rate_limited(retry_after=7))
    limited = await client.get(url)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["code"] == "429"
    assert (await client.get(url)).status_code == 200


async def test_non_json_fault_is_an_html_page(faulty: tuple[Faults, httpx.AsyncClient, str]) -> None:
    faults, client, url = faulty
    faults.inject(Fault.non_json(status=502))
    page = await client.get(url)
    assert page.status_code == 502 and page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>")


async def test_truncated_fault_drops_the_connection_mid_body(
        faulty: tuple[Faults, httpx.AsyncClient, str]) -> None:
    faults, client, url = faulty
    faults.inject(Fault.truncated())
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(url)
    assert (await client.get(url)).status_code == 200


async def test_latency_fault_delays_the_real_answer(faulty: tuple[Faults, httpx.AsyncClient, str]) -> None:
    faults, client, url = faulty
    faults.inject(Fault.latency(0.5))
    with pytest.raises(httpx.ReadTimeout):
        await client.get(url, timeout=0.1)
    faults.inject(Fault.latency(0.05))
    assert (await client.get(url)).status_code == 200
