"""`postbud recipients add|set|remove` and `postbud recipients group set|add|remove`: the recipients
file changed without editing TOML (postbud/recipients_admin.py says what is checked and refused)."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer

from postbud.cli.common import ConfigOpt, OperatorError, OperatorGroup, actor, config_of, out

if TYPE_CHECKING:
    from delivery.recipients import RecipientsFile
    from delivery.recipients_edit import Fields
    from postbud.recipients_admin import Changed, RecipientsAdmin

T = TypeVar("T")
# Mounted on `postbud recipients` by postbud/cli/app.py.
app = typer.Typer(cls=OperatorGroup)
group_app = typer.Typer(no_args_is_help=True, cls=OperatorGroup,
                        help="Groups of recipients: set, add members, remove members or the group.")

Org = Annotated[str, typer.Argument(metavar="ORG", help="The organisation's CVR number (or its name).")]
Name = Annotated[Optional[str], typer.Option("--name", help="Display name (matched fuzzily by rules and the queue).")]
Email = Annotated[Optional[str], typer.Option("--email")]
Alias = Annotated[Optional[list[str]], typer.Option("--alias", help="An alias; repeat for several (replaces the list).")]
ChannelOpt = Annotated[Optional[str], typer.Option("--channel", help="email, webhook or post (default: the "
                                                   "organisation's default_channel).")]
Smime = Annotated[Optional[Path], typer.Option("--smime-cert", help="The recipient's S/MIME certificate (PEM).")]
Pgp = Annotated[Optional[Path], typer.Option("--pgp-key", help="The recipient's OpenPGP public key.")]
PostalName = Annotated[Optional[str], typer.Option("--postal-name", help="Postal address: addressee line.")]
Street = Annotated[Optional[str], typer.Option("--street", help="Postal address: street and number.")]
Postcode = Annotated[Optional[str], typer.Option("--postcode", help="Postal address: postcode.")]
City = Annotated[Optional[str], typer.Option("--city", help="Postal address: city.")]
Country = Annotated[Optional[str], typer.Option("--country", help="Postal address: ISO country code (DK).")]
Notify = Annotated[Optional[str], typer.Option("--notify", help="letter (the encrypted letter), notice "
                                               "(only 'a letter is waiting') or digest (one such mail a day).")]
NoticeTo = Annotated[Optional[str], typer.Option("--notification-address", help="Where notices go (default: "
                                                 "--email).")]
RouteAlone = Annotated[Optional[bool], typer.Option("--route-alone/--never-alone", help="Whether the model may "
                                                    "route to them without a person.")]
Expected = Annotated[Optional[str], typer.Option("--if-version", help="Only if the file is still this version "
                                                 "(the SHA-256 `recipients show-version` printed).")]


def _admin(ctx: typer.Context, config: Path | None) -> RecipientsAdmin:
    from postbud.recipients_admin import RecipientsAdmin
    from postbud.runtime import open_store
    from delivery.recipients_edit import RecipientsEditError

    cfg = config_of(ctx, config)
    try:
        return RecipientsAdmin(cfg, open_store(cfg), actor=actor())
    except RecipientsEditError as exc:
        raise OperatorError(str(exc)) from None


def _org(admin: RecipientsAdmin, typed: str) -> str:
    from postbud import names

    return names.organisation(admin.config, typed)


def _fields(*, name: str | None, email: str | None, aliases: list[str] | None, channel: str | None,
            smime: Path | None, pgp: Path | None, postal: dict[str, str | None], notify: str | None,
            notice_to: str | None, route_alone: bool | None, clear: list[str] | None = None,
            address: dict[str, str] | None = None) -> Fields:
    """The options as a `Fields`, every value checked in form first (exit 2 for a wrong one)."""
    from pydantic import ValidationError

    from delivery.recipients import Channel, PostalAddress
    from delivery.recipients_edit import CLEARABLE, Fields
    from postbud import names

    if channel is not None and channel not in {c.value for c in Channel}:
        raise OperatorError(f"--channel {channel}: choose email, webhook or post", exit_code=2)
    if notify is not None and notify not in ("letter", "notice", "digest"):
        raise OperatorError(f"--notify {notify}: choose letter, notice or digest", exit_code=2)
    if smime is not None and pgp is not None:
        raise OperatorError("give --smime-cert or --pgp-key, not both", exit_code=2)
    for path, option in ((smime, "--smime-cert"), (pgp, "--pgp-key")):
        if path is not None and not path.is_file():
            raise OperatorError(f"{option} {path}: no such file", exit_code=2)
    for typed in (email, notice_to):
        if typed is not None:
            names.email_address(typed)
    wrong = sorted(set(clear or ()) - set(CLEARABLE))
    if wrong:
        raise OperatorError(f"--clear {wrong[0]}: choose from {', '.join(CLEARABLE)}", exit_code=2)
    given = {k: v for k, v in postal.items() if v is not None}
    post_address = None
    if given:
        try:
            post_address = PostalAddress.model_validate({**(address or {}), **given})
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise OperatorError(f"postal address: {'.'.join(str(p) for p in problem['loc'])}: {problem['msg']} "
                                "(give --postal-name, --street, --postcode and --city)", exit_code=2) from None
    return Fields(name=name, aliases=tuple(aliases) if aliases else None, email=email, channel=channel,
                  smime_cert=smime.resolve() if smime else None, pgp_key=pgp.resolve() if pgp else None,
                  postal_address=post_address, notify=notify, notification_address=notice_to,
                  route_alone=route_alone, unset=frozenset(clear or ()))


def _done(changed: Changed) -> None:
    out.print(f"{changed.summary}; the daemon takes the change up by itself (file version "
              f"{changed.version[:12]})", highlight=False, markup=False)


def _run(call: Callable[[], T]) -> T:
    """The change (or the file's reading), a refusal as one line."""
    from delivery.recipients_edit import RecipientsEditError

    try:
        return call()
    except RecipientsEditError as exc:
        raise OperatorError(str(exc)) from None


def _directory(admin: RecipientsAdmin) -> RecipientsFile:
    directory = _run(admin.directory)
    if directory is None:
        raise OperatorError(f"{admin.path} does not exist yet: add a recipient first")
    return directory


@app.command("add")
def add_cmd(ctx: typer.Context, org: Org,
            rid: Annotated[str, typer.Argument(metavar="ID", help="The new recipient's id (a-z, 0-9, . _ -).")],
            name: Name = None, email: Email = None, alias: Alias = None, channel: ChannelOpt = None,
            smime_cert: Smime = None, pgp_key: Pgp = None, postal_name: PostalName = None, street: Street = None,
            postcode: Postcode = None, city: City = None, country: Country = None, notify: Notify = None,
            notification_address: NoticeTo = None, route_alone: RouteAlone = None, if_version: Expected = None,
            config: ConfigOpt = None) -> None:
    """Add a recipient to the recipients file (they still need approval: `recipients invite`)."""
    admin = _admin(ctx, config)
    cvr = _org(admin, org)
    fields = _fields(name=name, email=email, aliases=alias, channel=channel, smime=smime_cert, pgp=pgp_key,
                     postal={"name": postal_name, "street": street, "postcode": postcode, "city": city,
                             "country": country},
                     notify=notify, notice_to=notification_address, route_alone=route_alone)
    _done(_run(lambda: admin.add(cvr, rid, fields, expected=if_version)))


@app.command("set")
def set_cmd(ctx: typer.Context, org: Org,
            rid: Annotated[str, typer.Argument(metavar="ID", help="Recipient id, name or alias.")],
            name: Name = None, email: Email = None, alias: Alias = None, channel: ChannelOpt = None,
            smime_cert: Smime = None, pgp_key: Pgp = None, postal_name: PostalName = None, street: Street = None,
            postcode: Postcode = None, city: City = None, country: Country = None, notify: Notify = None,
            notification_address: NoticeTo = None, route_alone: RouteAlone = None,
            clear: Annotated[Optional[list[str]], typer.Option("--clear", help="Remove a setting (channel, "
                                                               "aliases, postal_address, …); repeatable.")] = None,
            if_version: Expected = None, config: ConfigOpt = None) -> None:
    """Change a recipient's settings in the recipients file; what is not given stays as it is."""
    from postbud import names

    admin = _admin(ctx, config)
    cvr = _org(admin, org)
    directory = _directory(admin)
    rid = names.recipient(directory, cvr, rid)
    current = directory.get(cvr, rid)
    address = current.postal_address.model_dump() if current.postal_address is not None else None
    fields = _fields(name=name, email=email, aliases=alias, channel=channel, smime=smime_cert, pgp=pgp_key,
                     postal={"name": postal_name, "street": street, "postcode": postcode, "city": city,
                             "country": country},
                     notify=notify, notice_to=notification_address, route_alone=route_alone, clear=clear,
                     address=address)
    _done(_run(lambda: admin.change(cvr, rid, fields, expected=if_version)))


@app.command("remove")
def remove_cmd(ctx: typer.Context, org: Org,
               rid: Annotated[str, typer.Argument(metavar="ID", help="Recipient id, name or alias.")],
               hold_waiting: Annotated[bool, typer.Option("--hold-waiting", help="Letters waiting in the outbox "
                                                          "for them go back to the manual queue (else refused).")]
               = False,
               if_version: Expected = None, config: ConfigOpt = None) -> None:
    """Remove a recipient from the file and revoke their approval; refused while in a group or awaited."""
    from postbud import names

    admin = _admin(ctx, config)
    cvr = _org(admin, org)
    rid = names.recipient(_directory(admin), cvr, rid)
    _done(_run(lambda: admin.remove(cvr, rid, hold_waiting=hold_waiting, expected=if_version)))


@app.command("show-version")
def version_cmd(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Print the recipients file's version (SHA-256), for --if-version in scripts."""
    admin = _admin(ctx, config)
    out.print(admin.current().digest, highlight=False)


Group = Annotated[str, typer.Argument(metavar="GROUP", help="The group's id.")]
Members = Annotated[list[str], typer.Argument(metavar="MEMBER...", help="Recipient ids, names or aliases.")]


def _members(admin: RecipientsAdmin, org: str, typed: list[str]) -> list[str]:
    from postbud import names

    directory = _directory(admin)
    return [names.recipient(directory, org, m) for m in typed]


@group_app.command("set")
def group_set_cmd(ctx: typer.Context, org: Org, gid: Group, members: Members, if_version: Expected = None,
                  config: ConfigOpt = None) -> None:
    """Create a group, or replace its members."""
    admin = _admin(ctx, config)
    cvr = _org(admin, org)
    chosen = _members(admin, cvr, members)
    _done(_run(lambda: admin.set_group(cvr, gid, chosen, expected=if_version)))


@group_app.command("add")
def group_add_cmd(ctx: typer.Context, org: Org, gid: Group, members: Members, if_version: Expected = None,
                  config: ConfigOpt = None) -> None:
    """Add members to a group (created when new)."""
    admin = _admin(ctx, config)
    cvr = _org(admin, org)
    present = list(_directory(admin).groups(cvr).get(gid, ()))
    chosen = present + [m for m in _members(admin, cvr, members) if m not in present]
    _done(_run(lambda: admin.set_group(cvr, gid, chosen, expected=if_version)))


@group_app.command("remove")
def group_remove_cmd(ctx: typer.Context, org: Org, gid: Group,
                     members: Annotated[Optional[list[str]], typer.Argument(
                         metavar="[MEMBER...]", help="Members to take out; none: remove the whole group.")] = None,
                     if_version: Expected = None, config: ConfigOpt = None) -> None:
    """Take members out of a group, or remove the group (refused while a rule or default_route names it)."""
    admin = _admin(ctx, config)
    cvr = _org(admin, org)
    if not members:
        _done(_run(lambda: admin.remove_group(cvr, gid, expected=if_version)))
        return
    present = list(_directory(admin).groups(cvr).get(gid, ()))
    if not present:
        raise OperatorError(f"{gid} is not a group of organisation {cvr}")
    leaving = set(_members(admin, cvr, members))
    stray = sorted(leaving - set(present))
    if stray:
        raise OperatorError(f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not in group {gid}")
    _done(_run(lambda: admin.set_group(cvr, gid, [m for m in present if m not in leaving], expected=if_version)))
