"""`postbud keys rotate`: a new key for content at rest, and everything stored re-encrypted with it."""

from __future__ import annotations

from typing import Annotated

import typer

from postbud.cli.common import ConfigOpt, OperatorGroup, config_of, err, out

app = typer.Typer(no_args_is_help=True, help="Encryption keys for content at rest.", cls=OperatorGroup)


@app.command("rotate")
def rotate_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows re-encrypted per transaction.")] = 500,
) -> None:
    """Make a new active key and re-encrypt all stored content with it, in batches."""
    from core.storage.rotate import reencrypt_all
    from core.storage.vault import Vault, keyring_path, load_keyring, save_keyring
    from postbud.runtime import open_store

    cfg = config_of(ctx, config)
    keyring = load_keyring(cfg.encryption.keyring, create=False).rotated()
    save_keyring(keyring_path(cfg.encryption.keyring), keyring)
    store = open_store(cfg)
    store.vault = Vault(keyring, source=store.vault.source)
    report = reencrypt_all(
        store, batch_size=batch_size,
        progress=lambda r: err.print(f"  {r.reencrypted} blobs re-encrypted ({r.batches} batches)"),
    )
    out.print(f"active key {keyring.active}; {report.reencrypted} blobs re-encrypted")
