"""`postbud users …`: the console's local accounts — add, list, disable, set-profile."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from postbud.cli.common import ConfigOpt, actor, config_of, err, out, print_json

app = typer.Typer(no_args_is_help=True, help="Console accounts: add, list, disable, set-profile, set-email, "
                  "link, unlink.")

PASSWORD_ENV = "POSTBUD_USER_PASSWORD"


def _password() -> str:
    # From the environment for scripts, else asked twice without echo; never an argument (shell history).
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        err.print("the passwords differ")
        raise typer.Exit(1)
    return first


@app.command("add")
def add_cmd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="NAME")],
    profile: Annotated[str, typer.Option("--profile", help="administrator, full, processing, "
                                         "processing+archive, feedback or delivery.")],
    orgs: Annotated[list[str], typer.Option("--org", help="An organisation (CVR) granted; repeat for more.")],
    recipient: Annotated[Optional[str], typer.Option("--recipient", help="The recipient id of a delivery account.")] = None,
    language: Annotated[str, typer.Option("--language", help="da or en.")] = "da",
    email: Annotated[Optional[str], typer.Option("--email", help="Where links authorising a new network "
                                                 "are mailed (trusted locations).")] = None,
    oidc: Annotated[Optional[str], typer.Option("--oidc", help="The identity at [console.oidc]'s provider "
                    "that signs in to this account: the value of its claim (an e-mail address, a subject id).")] = None,
    no_password: Annotated[bool, typer.Option("--no-password", help="Sign-in through the identity provider "
                           "only (needs --oidc).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Add an account; the password is read from $POSTBUD_USER_PASSWORD or asked for (not with --no-password)."""
    from postbud.console.accounts import AccountError, add_user
    from postbud.names import UnknownName, organisation
    from postbud.runtime import open_store

    cfg = config_of(ctx, config)
    if no_password and oidc is None:
        err.print("--no-password needs --oidc IDENTITY: the account would have no way to sign in")
        raise typer.Exit(2)
    try:
        cvrs = [organisation(cfg, o) for o in orgs]
        add_user(open_store(cfg), username, None if no_password else _password(), profile=profile,
                 organisations=cvrs, recipient=recipient, language=language, actor=actor(None), email=email,
                 oidc_identity=oidc)
    except (AccountError, UnknownName) as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"user {username} added ({profile}: {', '.join(cvrs)})", highlight=False)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Every account with its profile, organisations and state (never a hash)."""
    from rich.table import Table

    from postbud.console.accounts import users
    from postbud.runtime import open_store

    rows = [{"username": u.username, "profile": u.profile, "organisations": u.organisations,
             "recipient": u.recipient, "email": u.email, "language": u.language, "disabled": u.disabled,
             "oidc": u.oidc_identity,
             "created_at": u.created_at.isoformat()} for u in users(open_store(config_of(ctx, config)))]
    if as_json:
        print_json(rows)
        return
    table = Table("user", "profile", "organisations", "recipient", "language", "oidc", "state")
    for r in rows:
        table.add_row(str(r["username"]), str(r["profile"]), ", ".join(r["organisations"]),  # type: ignore[arg-type]
                      str(r["recipient"] or ""), str(r["language"]), str(r["oidc"] or ""),
                      "disabled" if r["disabled"] else "active")
    out.print(table)


@app.command("disable")
def disable_cmd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="NAME")],
    config: ConfigOpt = None,
) -> None:
    """Disable an account: it cannot sign in and its sessions end at once."""
    from postbud.console.accounts import AccountError, disable
    from postbud.runtime import open_store

    try:
        disable(open_store(config_of(ctx, config)), username, actor=actor(None))
    except AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"user {username} disabled", highlight=False)


@app.command("set-profile")
def set_profile_cmd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="NAME")],
    profile: Annotated[str, typer.Argument(metavar="PROFILE")],
    recipient: Annotated[Optional[str], typer.Option("--recipient", help="The recipient id of a delivery account.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Give an account another profile (its sessions end: the new rights start at the next sign-in)."""
    from postbud.console.accounts import AccountError, set_profile
    from postbud.runtime import open_store

    try:
        set_profile(open_store(config_of(ctx, config)), username, profile, actor=actor(None), recipient=recipient)
    except AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"user {username} is now {profile}", highlight=False)


@app.command("set-email")
def set_email_cmd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="NAME")],
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="An address, or \"\" for none.")],
    config: ConfigOpt = None,
) -> None:
    """Where the account's links authorising a new network are mailed (trusted locations)."""
    from postbud.console.accounts import AccountError, set_email
    from postbud.runtime import open_store

    try:
        set_email(open_store(config_of(ctx, config)), username, email or None, actor=actor(None))
    except AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"user {username}: links go to {email or 'nowhere (an administrator authorises networks)'}",
              highlight=False)


def _link(ctx: typer.Context, config: Path | None, username: str, identity: str | None) -> None:
    from postbud.console.accounts import AccountError, link_identity
    from postbud.runtime import open_store

    try:
        link_identity(open_store(config_of(ctx, config)), username, identity, actor=actor(None))
    except AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None


@app.command("link")
def link_cmd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="NAME")],
    identity: Annotated[str, typer.Argument(metavar="IDENTITY", help="The value of [console.oidc] claim "
                                            "(an e-mail address, a subject id) that signs in to NAME.")],
    config: ConfigOpt = None,
) -> None:
    """Let an identity at the [console.oidc] provider sign in to an existing account."""
    _link(ctx, config, username, identity)
    out.print(f"user {username} signs in as {identity.strip()} through the identity provider", highlight=False)


@app.command("unlink")
def unlink_cmd(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="NAME")],
    config: ConfigOpt = None,
) -> None:
    """Stop an account's sign-in through the identity provider (its sessions end)."""
    _link(ctx, config, username, None)
    out.print(f"user {username} no longer signs in through the identity provider", highlight=False)
