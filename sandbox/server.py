"""Runs a fake provider's ASGI app with uvicorn over TLS on 127.0.0.1, inside the current event loop.

    ca = LocalCA(tmp_path / "ca")
    async with serve_tls(app, ca=ca, client_certs=ClientCerts.OPTIONAL) as base_url:
        ...  # https://127.0.0.1:<port>

With `ClientCerts.OPTIONAL` the TLS layer accepts connections without a client certificate (a
certificate that does not chain to the CA still fails the handshake) and the app decides: the
verified peer's common name is in `request.state.tls_client_cn` (None when none was presented), so
a fake can answer 401/403 as the real provider does instead of failing the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from sandbox.testca import LocalCA

STATE_CLIENT_CN = "tls_client_cn"


class ClientCerts(StrEnum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


_CERT_REQS = {
    ClientCerts.NONE: ssl.CERT_NONE,
    ClientCerts.OPTIONAL: ssl.CERT_OPTIONAL,
    ClientCerts.REQUIRED: ssl.CERT_REQUIRED,
}


class _PeerCertProtocol(H11Protocol):
    """h11 protocol with TCP_NODELAY that exposes the client certificate's CN to the app."""

    # uvicorn declares BaseTransport; its TCP server always hands a Transport, whose extras this reads.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        raw = transport.get_extra_info("socket")
        if raw is not None:
            # uvicorn writes headers and body separately; without NODELAY, Nagle holds the body
            # until the client's delayed ACK (~40 ms a request on Linux loopback).
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        # asyncio calls connection_made after the TLS handshake, so the peer cert is final here;
        # app_state is copied into each request's scope["state"], so a per-connection copy is safe.
        self.app_state = {**self.app_state, STATE_CLIENT_CN: _peer_cn(transport)}


def _peer_cn(transport: asyncio.Transport) -> str | None:
    cert: Any = transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


@contextlib.asynccontextmanager
async def serve_tls(app: ASGIApp, *, ca: LocalCA, port: int = 0, server_name: str = "sandbox-server",
                    client_certs: ClientCerts = ClientCerts.NONE) -> AsyncIterator[str]:
    """Serve `app` on https://127.0.0.1:`port` (0: the OS picks) until the block exits; yields the URL."""
    issued = ca.issue(server_name, hosts=("127.0.0.1", "localhost"))
    tls = dict(ssl_certfile=str(issued.cert_path), ssl_keyfile=str(issued.key_path), ssl_ca_certs=str(ca.cert_path),
               ssl_cert_reqs=_CERT_REQS[client_certs])
    async with _serve(app, port=port, server_name=server_name, tls=tls) as port_bound:
        yield f"https://127.0.0.1:{port_bound}"


@contextlib.asynccontextmanager
async def serve_http(app: ASGIApp, *, port: int = 0, server_name: str = "sandbox-server") -> AsyncIterator[str]:
    """Serve `app` on plain http://127.0.0.1:`port`: for a fake a browser visits (the identity provider),
    which would not trust the test CA."""
    async with _serve(app, port=port, server_name=server_name, tls={}) as port_bound:
        yield f"http://127.0.0.1:{port_bound}"


@contextlib.asynccontextmanager
async def _serve(app: ASGIApp, *, port: int, server_name: str, tls: dict[str, Any]) -> AsyncIterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=_PeerCertProtocol,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=2,
        **tls,
    )
    server = uvicorn.Server(config)
    # `_serve` rather than `serve`: `serve` swaps the process's signal handlers, which is wrong for
    # a server embedded in a test or in `postbud sandbox` (several servers, the caller owns Ctrl-C).
    task = asyncio.create_task(server._serve(sockets=[sock]), name=f"uvicorn:{server_name}")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("sandbox server stopped while starting")
            await asyncio.sleep(0.01)
        yield bound_port
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
