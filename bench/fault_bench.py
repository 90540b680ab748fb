"""The connector fault suite (issue 14): collection while 30 % of provider requests fail.

A fake provider (NgDP: 2 CVRs x 40 letters, one mailbox each; mit.dk: 40 letters) serves over TLS
with a seeded fault rate drawn from 429 with Retry-After, 500, 503 and connections reset mid-body.
postbud's own runtime (config, connectors, dispatcher) polls every mailbox once per "interval"
(`run_all_once`), and the suite reports after how many intervals every letter was collected and
acknowledged, how often each was downloaded and deleted/marked read, and requests per letter. Run:

    .venv/bin/python -m bench.fault_bench --provider ngdp mitdk --rate 0.3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from sqlmodel import func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from core.configfile import load_config
from core.storage.models import Message
from postbud.runtime import Runtime
from sandbox.faults import Fault
from sandbox.generator import generate
from sandbox.providers import mitdk, ngdp
from sandbox.server import serve_tls
from sandbox.testca import LocalCA

CVRS = ("12345674", "30624378")
POOL = (Fault.rate_limited(retry_after=1), Fault.server_error(), Fault.unavailable(1), Fault.truncated())


class Counting:
    """Counts every request that reaches the provider (faulted ones included), by method."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests[scope["method"]] += 1
        await self.app(scope, receive, send)


def _mailbox(provider: str, fake: Any, base: str, ca: LocalCA, cvr: str) -> str:
    if provider == "ngdp":
        creds = fake.credentials()
        return (f'  [[organisations.mailboxes]]\n  name = "dp"\n  type = "ngdp"\n  acknowledge = "after_commit"\n'
                f'  base_url = "{base}"\n  system_id = "{creds["system_id"]}"\n  api_token = "{creds["api_token"]}"\n'
                f'  client_cert = "{creds["client_cert"]}"\n  client_key = "{creds["client_key"]}"\n'
                f'  ca_file = "{ca.cert_path}"\n  cvrs = ["{cvr}"]\n  page_size = 7\n')
    creds = fake.credentials()
    return (f'  [[organisations.mailboxes]]\n  name = "mit"\n  type = "mitdk"\n  acknowledge = "after_commit"\n'
            f'  base_url = "{base}"\n  ca_file = "{ca.cert_path}"\n  client_id = "{creds["client_id"]}"\n'
            f'  dpp_refresh_token = "{creds["dpp_refresh_token"]}"\n'
            f'  ngdp_refresh_token = "{creds["ngdp_refresh_token"]}"\n  cvr = "{cvr}"\n  page_size = 7\n')


async def run(provider: str, *, rate: float = 0.3, letters: int = 40, max_rounds: int = 6, seed: int = 1,
              folder: Path) -> dict[str, Any]:
    ca = LocalCA(folder / "ca")
    cvrs = CVRS if provider == "ngdp" else CVRS[:1]  # one mit.dk token pair is one company (§2.4)
    if provider == "ngdp":
        fake: Any = ngdp.make_fake(folder=folder / "ngdp", ca=ca, seed=seed)
    else:
        fake = mitdk.make_fake(folder=folder / "mitdk", ca=ca, seed=seed)
    keys = []
    for cvr in cvrs:
        if provider == "mitdk":
            fake.mailbox_for(cvr, f"Firma {cvr} ApS")
        keys += fake.add_messages(generate(cvr, letters, seed=seed))
    counting = Counting(fake.app)
    async with serve_tls(counting, ca=ca, client_certs=getattr(fake, "client_certs", None),
                         server_name=f"{provider}-faults") as url:
        base = url + fake.base_path
        orgs = "".join(f'[[organisations]]\ncvr = "{cvr}"\nname = "Firma {cvr} ApS"\n'
                       + _mailbox(provider, fake, base, ca, cvr) for cvr in cvrs)
        path = folder / "postbud.toml"
        path.write_text(f'[database]\nurl = "sqlite:///{folder / "p.db"}"\n'
                        '[collector]\nretries = 4\n' + orgs)
        runtime = await asyncio.to_thread(Runtime.create, load_config(path))
        # A token refresh whose answer is lost ends mit.dk's chain (the old refresh token is retired at
        # once, PROTOCOLS.md §4.2): that is an onboarding problem, not a transient one, so spared.
        fake.faults.set_rate(rate, POOL, spare=("authorization/",))
        rounds_needed = None
        try:
            for round_ in range(1, max_rounds + 1):
                await runtime.dispatcher.run_all_once()
                if not fake.pending() and rounds_needed is None:
                    rounds_needed = round_
                    break
            with runtime.store.read() as session:
                stored = session.exec(select(func.count()).select_from(Message)).one()
                acknowledged = session.exec(select(func.count()).select_from(Message)
                                            .where(Message.acknowledged_at.is_not(None))).one()  # type: ignore[union-attr]
        finally:
            await runtime.aclose()
    fetches = fake.fetch_counts()
    faults = Counter(kind.value for kind, _ in fake.faults.applied)
    total = sum(counting.requests.values())
    return {
        "provider": provider, "letters": len(keys), "fault_rate": rate, "intervals_to_all_collected": rounds_needed,
        "stored": stored, "acknowledged_in_db": acknowledged, "left_at_provider": len(fake.pending()),
        "downloads_per_letter": dict(Counter(fetches.get(k, 0) for k in keys)),
        "requests": total, "requests_per_letter": round(total / len(keys), 2),
        "requests_by_method": dict(counting.requests), "faults": dict(faults),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--provider", nargs="+", default=["ngdp", "mitdk"], choices=["ngdp", "mitdk"])
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for provider in args.provider:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(run(provider, rate=args.rate, seed=args.seed, folder=Path(tmp)))))


if __name__ == "__main__":
    main()
