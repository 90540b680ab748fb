"""`make run`'s configuration: the example config against the built-in sandbox collects from NgDP."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from core.config import Config
from core.configfile import load_config
from postbud.runtime import Runtime
from postbud.service import serve
from postbud.trace import SearchFilter, search

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def example_config(folder: Path) -> Config:
    """config.example.toml copied to `folder`, on free ports so tests never collide."""
    text = EXAMPLE.read_text()
    ports = dict(zip(("ngdp", "eboks", "mitdk", "smtp", "http", "post", "idp"), free_ports(7), strict=True))
    for name, default in (("ngdp", 18443), ("eboks", 18444), ("mitdk", 18445), ("smtp", 18025), ("http", 9464),
                          ("post", 18446), ("idp", 18447)):
        text = text.replace(str(default), str(ports[name]))
    (folder / "postbud.toml").write_text(text)
    shutil.copytree(EXAMPLE.parent / "rules" / "examples", folder / "rules" / "examples")
    return load_config(folder / "postbud.toml")


@pytest.mark.slow
def test_example_config_collects_from_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTBUD_DATABASE_URL", raising=False)
    config = example_config(tmp_path)
    asyncio.run(serve(config, once=True))
    runtime = Runtime.create(config)
    try:
        found = search(runtime.store, SearchFilter(limit=1000))
    finally:
        asyncio.run(runtime.aclose())
    per_provider = config.sandbox.messages_per_cvr
    counts = {p: sum(1 for row in found if row["provider"] == p) for p in ("ngdp", "eboks", "mitdk", "folder")}
    # The drop folder gets the console demo's three legal notifications (sandbox/demo_held.py), which are
    # held, and the letter for the demo recipient who chose post (sandbox/demo_post.py), delivered by post.
    assert counts == {"ngdp": per_provider, "eboks": per_provider, "mitdk": per_provider, "folder": 4}
    folder = {row["title"]: row["status"] for row in found if row["provider"] == "folder"}
    assert sorted(folder.values()) == ["delivered", "held", "held", "held"]
    assert folder["Registrering af ændrede vedtægter"] == "delivered"
    assert all(row["status"] in ("routed", "held", "delivered") for row in found)
    # ... and the print-and-mail fake keeps the PDF it printed, with the post recipient's address
    [printed] = (tmp_path / "var" / "sandbox" / "post").glob("*.pdf")
    assert printed.read_bytes().startswith(b"%PDF")
    assert '"city": "Aarhus C"' in printed.with_suffix(".json").read_text(encoding="utf-8")
    # The providers let go of a message only once it is delivered (the second collect of --once).
    # (The drop folder lets go of a file once it is committed, so its held letters are acknowledged.)
    assert all((row["acknowledged_at"] is not None) == (row["status"] == "delivered") for row in found
               if row["provider"] != "folder")
    assert any(row["status"] == "delivered" for row in found)
