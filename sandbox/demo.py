"""The built-in sandbox for `make run` and demos: fake providers filled with generated mail, a local
TLS mail server keeping what it receives, and demo recipients whose keys are generated on first run.

Credentials the fakes generate are written as one file each under `<folder>/secrets/`
(`<provider>.<key>`, mode 0600), so the config names them as `{ file = "…" }` secrets like any other.
The fakes are seeded, so ids, paths and credentials are the same on every start. The demo
recipients file (`<folder>/recipients.toml`) is written on the first start from the demo keys, and
only demo recipients never decided on are approved: what an administrator changed since (the file,
a revocation) survives restarts. One demo recipient (`archive`) chose physical post: a letter
addressed to it is dropped once, and the print-and-mail fake keeps its PDF under `<folder>/post/`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from core.config import Config
from core.storage.db import Store
from core.storage.models import RecipientApproval
from delivery.approval import approve
from delivery.recipients import RecipientsFile, load_recipients
from sandbox.demo_accounts import ensure_demo_accounts
from sandbox.demo_held import drop_held_letters
from sandbox.demo_onboarding import ONBOARDING_ID, invite_onboarding_demo, onboarding_entry
from sandbox.demo_post import drop_post_letter
from sandbox.identity import FakeIdentityProvider, serves_identity_provider
from sandbox.mailserver import DemoKeys, SandboxMailServer, ensure_demo_recipient
from sandbox.post import FakePost
from sandbox.run import SandboxHandle, serve_sandbox
from sandbox.server import serve_http, serve_tls
from sandbox.testca import LocalCA

log = logging.getLogger(__name__)

# The demo organisation's people and units: the ids the example rules route to, with the names the
# sandbox's letters address (AttentionData, "Att.:" lines). All share the demo keys.
DEMO_RECIPIENTS: dict[str, tuple[str, list[str], str]] = {
    "frontdesk": ("Reception", ["Hoveddøren", "Front desk"], "smime"),
    "finance": ("Økonomi og regnskab", ["Bogholderiet", "Økonomi"], "smime"),
    "payroll": ("Lønafdelingen", ["Løn", "HR"], "smime"),
    "legal": ("Juridisk afdeling", ["Jura", "Legal"], "pgp"),
    "management": ("Direktionen", ["Ledelsen"], "smime"),
    "mette": ("Mette Kjær Hansen", ["MKH"], "pgp"),
    "soren": ("Søren Østergaard", ["SØ"], "smime"),
    "archive": ("Arkivet", ["Arkiv", "Dokumentarkivet"], "smime"),
}
# Demo recipients who chose physical post: their letters are printed by the sandbox's print-and-mail
# fake (sandbox/demo_post.py drops one addressed to them). They keep an address and a key for e-mail,
# where their letters go when an organisation switches post off.
DEMO_BY_POST: dict[str, str] = {
    "archive": 'channel = "post"\npostal_address = { name = "Arkivet", street = "Vestergade 1", '
               'postcode = "8000", city = "Aarhus C" }\n',
}
# Written once into a demo file from before they were added (the marker remembers it, so removing
# them afterwards sticks).
ADDED_LATER = ("archive",)
ADDED_LATER_MARKER = "demo-recipients-added-later"


@dataclass
class Sandbox:
    """The running sandbox: a `postbud.extensions.RunningExtension`."""

    providers: SandboxHandle
    mail: SandboxMailServer
    keys: DemoKeys
    folder: Path
    post: FakePost | None = None
    post_url: str = ""
    identity: FakeIdentityProvider | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack, repr=False)

    def describe(self) -> list[str]:
        lines = [f"{name:<6} {endpoint.base_url}" for name, endpoint in self.providers.endpoints.items()]
        lines.append(f"smtp   127.0.0.1:{self.mail.port} (STARTTLS), mail kept in {self.mail.mail_dir}")
        if self.post is not None:
            lines.append(f"post   {self.post_url} (print and mail), letters kept in {self.post.folder}")
        if self.identity is not None:
            lines.append(f"idp    {self.identity.issuer} (OpenID Connect sign-in to the console; people: "
                         f"{', '.join(self.identity.people)})")
        lines.append(f"CA {self.providers.ca_path}; credentials in {self.folder / 'secrets'}")
        return lines

    def runtime_ready(self, store: Store, config: Config) -> None:
        if config.recipients.file is not None:
            directory = load_recipients(config.recipients.file)
            approve_demo_recipients(store, config, directory)
            invite_onboarding_demo(store, config, directory)
        drop_held_letters(config, self.folder)
        if "post" in config.delivery.channels:
            drop_post_letter(config, self.folder)
        ensure_demo_accounts(store, config)

    async def aclose(self) -> None:
        await self._stack.aclose()
        await self.mail.stop()
        await self.providers.aclose()


class _Extension:
    """The entry point of installs made before `sandbox/extension.py` (their metadata still names this
    module); `make venv` moves them to the one that imports the sandbox only when it starts."""

    def wanted(self, config: Config) -> bool:
        return config.sandbox.enabled

    async def start(self, config: Config) -> Sandbox:
        return await start_sandbox(config)


extension = _Extension()


async def start_sandbox(config: Config) -> Sandbox:
    settings = config.sandbox
    cvrs = [org.cvr for org in config.organisations]
    providers = await serve_sandbox(settings.folder, cvrs, messages_per_cvr=settings.messages_per_cvr,
                                    seed=settings.seed, ports=dict(settings.ports),
                                    names={org.cvr: org.name for org in config.organisations})
    write_secrets(settings.folder / "secrets", providers)
    mail = SandboxMailServer(settings.folder / "mail", settings.folder / "ca",
                             port=settings.ports.get("smtp", 0))
    await mail.start()
    keys = ensure_demo_recipient(settings.folder / "keys")
    write_demo_recipients(settings.folder / "recipients.toml", cvrs, keys)
    sandbox = Sandbox(providers, mail, keys, settings.folder)
    try:
        await start_post(sandbox, settings.ports.get("post", 0))
        sandbox.identity = await start_identity_provider(sandbox._stack, settings.folder, config)
    except BaseException:
        await sandbox.aclose()
        raise
    log.info("sandbox running: %s; mail server on port %d, storing under %s",
             ", ".join(f"{n} at {e.base_url}" for n, e in providers.endpoints.items()),
             mail.port, settings.folder / "mail")
    return sandbox


def stable_secret(path: Path, fresh: str) -> str:
    """The secret kept in `path` (mode 0600), written from `fresh` on the first start: the config names
    the file, so the secret stays the same across starts."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(fresh, encoding="utf-8")
    return fresh


async def start_post(sandbox: Sandbox, port: int) -> None:
    """The fake print-and-mail provider on `port`, its client secret under secrets/ (post.client_secret)."""
    fake = FakePost(sandbox.folder / "post")
    fake.client_secret = stable_secret(sandbox.folder / "secrets" / "post.client_secret", fake.client_secret)
    ca = LocalCA(sandbox.folder / "ca")
    sandbox.post_url = await sandbox._stack.enter_async_context(
        serve_tls(fake.app, ca=ca, port=port, server_name="post-sandbox"))
    sandbox.post = fake


async def start_identity_provider(stack: contextlib.AsyncExitStack, folder: Path,
                                  config: Config) -> FakeIdentityProvider | None:
    """The fake identity provider at `[console.oidc] issuer` when that is http on this machine (until
    `stack` closes), its client secret under `folder`/secrets/ (idp.client_secret)."""
    issuer = serves_identity_provider(config)
    if issuer is None or config.console.oidc is None:
        return None
    fake = FakeIdentityProvider(client_id=config.console.oidc.client_id, issuer=issuer)
    fake.client_secret = stable_secret(folder / "secrets" / "idp.client_secret", fake.client_secret)
    await stack.enter_async_context(
        serve_http(fake.app, port=urllib.parse.urlsplit(issuer).port or 80, server_name="idp-sandbox"))
    return fake


def write_secrets(folder: Path, handle: SandboxHandle) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name, endpoint in handle.endpoints.items():
        for key, value in endpoint.credentials.items():
            path = folder / f"{name}.{key}"
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(value, encoding="utf-8")


def write_demo_recipients(path: Path, cvrs: list[str], keys: DemoKeys) -> None:
    """Write the demo recipients file, adding organisations it lacks (and the onboarding demo's recipient
    to one written before it existed, the recipients added later once); an existing entry is left as is."""
    present = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = [present or "# Written by the sandbox: demo recipients sharing the demo keys.\n"]
    later = path.parent / ADDED_LATER_MARKER
    for cvr in cvrs:
        if f"[org.{cvr}]" not in present:
            lines.append(f'\n[org.{cvr}]\ndefault_channel = "email"\n')
            lines += [_demo_entry(cvr, rid, keys) for rid in DEMO_RECIPIENTS]
            lines.append(onboarding_entry(cvr))
            continue
        if f"[org.{cvr}.recipients.{ONBOARDING_ID}]" not in present:
            lines.append(onboarding_entry(cvr))
        if not later.exists():
            lines += [_demo_entry(cvr, rid, keys) for rid in ADDED_LATER
                      if f"[org.{cvr}.recipients.{rid}]" not in present]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    later.write_text("the demo recipients added later were written into this folder's file once\n",
                     encoding="utf-8")


def _demo_entry(cvr: str, rid: str, keys: DemoKeys) -> str:
    name, aliases, kind = DEMO_RECIPIENTS[rid]
    key = f'smime_cert = "{keys.smime_cert}"' if kind == "smime" else f'pgp_key = "{keys.pgp_public}"'
    alias_list = ", ".join(f'"{a}"' for a in aliases)
    return (f'\n[org.{cvr}.recipients.{rid}]\nname = "{name}"\naliases = [{alias_list}]\n'
            f'email = "{rid}@eksempel.invalid"\n{key}\n{DEMO_BY_POST.get(rid, "")}')


def approve_demo_recipients(store: Store, config: Config, directory: RecipientsFile) -> int:
    """The sandbox vouches for its demo recipients, so `make run` delivers without invitations; only
    for those nobody decided on yet, so a revocation (or a pending invitation) survives restarts."""
    with store.read() as session:
        decided = {(r.organisation_cvr, r.recipient) for r in session.exec(select(RecipientApproval))}
    approved = 0
    for org in config.organisations:
        for rid in DEMO_RECIPIENTS:
            if (org.cvr, rid) in decided:
                continue
            approve(store, directory, org.cvr, rid, actor="sandbox", vouch=True)
            approved += 1
    return approved
