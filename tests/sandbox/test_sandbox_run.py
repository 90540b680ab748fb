"""serve_sandbox: every available fake starts with generated mail, and the NgDP connector collects it."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import httpx
import pytest

from connectors.ngdp.connector import NgdpConnector, Settings
from sandbox.run import serve_sandbox

CVRS = ["12345674", "30624378"]


async def test_sandbox_serves_ngdp_with_mail_for_every_cvr(tmp_path: Path) -> None:
    handle = await serve_sandbox(tmp_path, CVRS, messages_per_cvr=4, seed=2)
    try:
        ngdp = handle.endpoints["ngdp"]
        assert ngdp.base_url.startswith("https://127.0.0.1:") and ngdp.base_url.endswith("/apis/v1")
        summary = json.loads((tmp_path / "sandbox.json").read_text())
        assert summary["providers"]["ngdp"]["base_url"] == ngdp.base_url
        assert (tmp_path / "sandbox.json").stat().st_mode & 0o077 == 0
        creds = ngdp.credentials
        connector = NgdpConnector(Settings(
            base_url=ngdp.base_url, system_id=creds["system_id"], api_token=creds["api_token"],
            client_cert=Path(creds["client_cert"]), client_key=Path(creds["client_key"]),
            ca_file=handle.ca_path, cvrs=(CVRS[1],)))
        try:
            page = await connector.list_new(None)
            fetched = [await connector.fetch(ref) for ref in page.refs]
        finally:
            await connector.aclose()
        assert len(fetched) == 4 and {f.message.recipient.id for f in fetched} == {CVRS[1]}
        for name, endpoint in handle.endpoints.items():
            assert endpoint.base_url.startswith("https://127.0.0.1:"), name
    finally:
        await handle.aclose()
    with pytest.raises(httpx.ConnectError):  # stopped by aclose()
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=handle.ca_path)) as client:
            await client.get(ngdp.base_url + "/memos/")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_pinned_port_and_stable_credentials_across_runs(tmp_path: Path) -> None:
    port = _free_port()
    first = await serve_sandbox(tmp_path, CVRS[:1], messages_per_cvr=1, seed=3, ports={"ngdp": port})
    await first.aclose()
    second = await serve_sandbox(tmp_path, CVRS[:1], messages_per_cvr=1, seed=3, ports={"ngdp": port})
    try:
        assert second.endpoints["ngdp"].base_url == f"https://127.0.0.1:{port}/apis/v1"
        assert second.endpoints["ngdp"].credentials == first.endpoints["ngdp"].credentials
        assert second.ca_path.read_bytes() == first.ca_path.read_bytes()
    finally:
        await second.aclose()
