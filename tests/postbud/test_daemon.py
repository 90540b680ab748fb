"""The daemon: scheduled stages, the HTTP listener, and a clean stop."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from postbud.daemon import Daemon
from postbud.runtime import Runtime
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_daemon_collects_routes_and_serves_metrics(make_config: MakeConfig) -> None:
    port = free_port()
    config = make_config(
        extra="[schedule]\npoll_interval_seconds = 0.2\njitter_seconds = 0\nroute_interval_seconds = 0.2",
        listen=f"127.0.0.1:{port}",
    )
    runtime = await asyncio.to_thread(Runtime.create, config)
    daemon = Daemon(runtime)
    task = asyncio.create_task(daemon.run())
    try:
        drop(config.base_dir, "a.eml", EML)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            body = ""
            for _ in range(100):
                await asyncio.sleep(0.1)
                try:
                    body = (await client.get("/metrics")).text
                except httpx.ConnectError:
                    continue
                if 'postbud_messages{status="held"} 1.0' in body:
                    break
            assert 'postbud_messages_collected_total{provider="folder"} 1.0' in body
            assert 'postbud_messages{status="held"} 1.0' in body  # no recipients file: held by delivery
            assert 'postbud_routing_decisions_total{decided_by="default",outcome="route"} 1.0' in body
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).json() == {"status": "ready"}
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)
        await runtime.aclose()


def test_sigterm_stops_the_daemon_cleanly(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "postbud.toml"
    config.write_text(f'[http]\nlisten = "127.0.0.1:{port}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "postbud", "-c", str(config), "run"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.ConnectError:
                time.sleep(0.2)
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "shutting down" in stderr
