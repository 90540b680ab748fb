"""Editing the recipients file in place: comments and layout kept, the whole result checked by the
loader before it replaces the file (temporary file, fsync, rename), and a change made meanwhile by
someone else refused instead of overwritten.

The file stays the one source of truth: an administrator may go on editing it by hand, and the daemon
takes up a written change as it takes up a hand edit (`postbud.reload.RecipientsWatcher` sees the
rename). Writers serialise on a lock file beside it (`.<name>.lock`); `expected` (the SHA-256 of the
version the caller read and showed) refuses an edit based on a version that is no longer there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from delivery.errors import RecipientsFileError
from delivery.recipients import PostalAddress, RecipientsFile, load_recipients

ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Keys `set --clear` may remove (a recipient always keeps its name).
CLEARABLE = ("aliases", "email", "channel", "smime_cert", "pgp_key", "postal_address", "notify",
             "notification_address", "route_alone", "webhook")


class RecipientsEditError(Exception):
    """The change cannot be made as asked; the message says why and what to do."""


class RecipientsFileChanged(RecipientsEditError):
    """The file changed since the caller read it: their edit was based on a version that is gone."""


@dataclass(frozen=True)
class Snapshot:
    """One version of the file: its text and the SHA-256 of its bytes (empty when it does not exist)."""

    path: Path
    text: str
    digest: str


@dataclass(frozen=True)
class Fields:
    """What to write into a recipient's table: None leaves a key as it is, `unset` removes keys.
    Key paths are written relative to the file's folder when they lie within it."""

    name: str | None = None
    aliases: tuple[str, ...] | None = None
    email: str | None = None
    channel: str | None = None
    smime_cert: Path | None = None
    pgp_key: Path | None = None
    postal_address: PostalAddress | None = None
    notify: str | None = None
    notification_address: str | None = None
    route_alone: bool | None = None
    unset: frozenset[str] = field(default_factory=frozenset)


def snapshot(path: Path) -> Snapshot:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise RecipientsEditError(f"{path}: cannot read the recipients file: {exc.strerror}") from None
    return Snapshot(path, data.decode("utf-8", "replace"), hashlib.sha256(data).hexdigest())


def edit(path: Path, change: Callable[[TOMLDocument], None], *, expected: str | None = None,
         check: Callable[[RecipientsFile], None] | None = None) -> Snapshot:
    """Apply `change` to the file's document and replace the file with the result, once the result
    loads and `check` (raising RecipientsEditError) accepts it; returns the version written (the
    current one when nothing changed). RecipientsFileChanged when the file is no longer `expected`."""
    with _locked(path):
        current = snapshot(path)
        if expected is not None and current.digest != expected:
            raise RecipientsFileChanged(f"{path} changed since you read it (someone else edited it); "
                                        "nothing was written: look at it again and repeat your change")
        try:
            document = tomlkit.parse(current.text)
        except tomlkit.exceptions.ParseError as exc:
            raise RecipientsEditError(f"{path}: not valid TOML ({exc}); fix it by hand first") from None
        change(document)
        text = tomlkit.dumps(document)
        if text == current.text:
            return current
        _replace(path, text, check)
        return snapshot(path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace(path: Path, text: str, check: Callable[[RecipientsFile], None] | None) -> None:
    """Write `text` beside the file, check it as the daemon will load it (same folder: the same
    relative key paths), then rename it over the file; the folder is synced so the rename lasts."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        try:
            loaded = load_recipients(temporary)
        except RecipientsFileError as exc:
            raise RecipientsEditError(str(exc).replace(str(temporary), str(path)) + "; nothing was written") \
                from None
        if check is not None:
            check(loaded)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# -- changes to the document ----------------------------------------------------------------------

def put_recipient(document: TOMLDocument, org: str, rid: str, fields: Fields, *, create: bool,
                  base: Path) -> None:
    """Add (`create`) or change `[org.<org>.recipients.<rid>]`; `base` is the file's folder."""
    if not ID.match(rid):
        raise RecipientsEditError(f"{rid!r} cannot be a recipient id: use lower-case letters, digits, "
                                  "'.', '_' and '-' (at most 64)")
    recipients = _section(_organisation(document, org, create=create), "recipients", create=create)
    groups = _existing(_organisation(document, org, create=False), "groups")
    if create and groups is not None and rid in groups:
        raise RecipientsEditError(f"{rid} is a group of organisation {org}; choose another id")
    if create and rid in recipients:
        raise RecipientsEditError(f"{rid} is already a recipient of organisation {org}; change it with "
                                  "`recipients set`")
    if not create and rid not in recipients:
        raise RecipientsEditError(f"{rid} is not a recipient of organisation {org}; add it with "
                                  "`recipients add`")
    if create:
        if fields.name is None:
            raise RecipientsEditError(f"a new recipient needs a name (--name) for {rid}")
        table = tomlkit.table()
        recipients.append(rid, table)
    else:
        table = recipients[rid]
    unknown = set(fields.unset) - set(CLEARABLE)
    if unknown:
        raise RecipientsEditError(f"cannot clear {', '.join(sorted(unknown))}; clearable: {', '.join(CLEARABLE)}")
    for key in sorted(fields.unset):
        table.pop(key, None)
    values: dict[str, Any] = {
        "name": fields.name, "aliases": list(fields.aliases) if fields.aliases is not None else None,
        "email": fields.email, "channel": fields.channel,
        "smime_cert": _written_path(fields.smime_cert, base), "pgp_key": _written_path(fields.pgp_key, base),
        "postal_address": _inline(fields.postal_address.model_dump()) if fields.postal_address else None,
        "notify": fields.notify, "notification_address": fields.notification_address,
        "route_alone": fields.route_alone,
    }
    for key, value in values.items():
        if value is not None:
            table[key] = value
    # one key per recipient: a new one replaces the other kind
    if fields.smime_cert is not None:
        table.pop("pgp_key", None)
    if fields.pgp_key is not None:
        table.pop("smime_cert", None)
    if create:
        table.add(tomlkit.nl())


def drop_recipient(document: TOMLDocument, org: str, rid: str) -> None:
    """Remove the recipient's table, and the comment lines written directly above it."""
    recipients = _existing(_organisation(document, org, create=False), "recipients")
    if recipients is None or rid not in recipients:
        raise RecipientsEditError(f"{rid} is not a recipient of organisation {org}")
    _drop_comments_above(document, recipients[rid])
    del recipients[rid]


def put_group(document: TOMLDocument, org: str, gid: str, members: Sequence[str]) -> None:
    """Write `gid = [members]` under `[org.<org>.groups]` (the group created when new)."""
    if not ID.match(gid):
        raise RecipientsEditError(f"{gid!r} cannot be a group id: use lower-case letters, digits, "
                                  "'.', '_' and '-' (at most 64)")
    if not members:
        raise RecipientsEditError(f"group {gid} needs at least one member (remove the group instead)")
    organisation = _organisation(document, org, create=False)
    recipients = _existing(organisation, "recipients")
    if recipients is not None and gid in recipients:
        raise RecipientsEditError(f"{gid} is a recipient of organisation {org}; choose another group id")
    unknown = [m for m in members if recipients is None or m not in recipients]
    if unknown:
        raise RecipientsEditError(f"group {gid}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} "
                                  f"not a recipient of organisation {org}")
    groups = _section(organisation, "groups", create=True, super_table=False)
    groups[gid] = list(dict.fromkeys(members))


def drop_group(document: TOMLDocument, org: str, gid: str) -> None:
    groups = _existing(_organisation(document, org, create=False), "groups")
    if groups is None or gid not in groups:
        raise RecipientsEditError(f"{gid} is not a group of organisation {org}")
    del groups[gid]


def _organisation(document: TOMLDocument, org: str, *, create: bool) -> Table:
    orgs = document.get("org")
    if orgs is None and create:
        orgs = tomlkit.table(is_super_table=True)
        document["org"] = orgs
    if not isinstance(orgs, Table):
        raise RecipientsEditError(f"organisation {org} is not in the recipients file")
    if org not in orgs:
        if not create:
            raise RecipientsEditError(f"organisation {org} is not in the recipients file; add a recipient first")
        table = tomlkit.table()
        table["default_channel"] = "email"
        table.add(tomlkit.nl())
        orgs.append(org, table)
    found = orgs[org]
    if not isinstance(found, Table):
        raise RecipientsEditError(f"[org.{org}] must be a table; fix the file by hand first")
    return found


def _existing(organisation: Table, name: str) -> Table | None:
    found = organisation.get(name)
    if found is not None and not isinstance(found, Table):
        raise RecipientsEditError(f"{name} of this organisation is written inline; write it as tables "
                                  "([org.<CVR>.{name}…]) to edit it here")
    return found


def _section(organisation: Table, name: str, *, create: bool, super_table: bool = True) -> Table:
    found = _existing(organisation, name)
    if found is None:
        if not create:
            raise RecipientsEditError(f"the organisation has no {name}")
        found = tomlkit.table(is_super_table=super_table)
        organisation.append(name, found)
    return found


def _inline(values: dict[str, Any]) -> Any:
    table = tomlkit.inline_table()
    table.update(values)
    return table


def _written_path(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    absolute = path.resolve()
    try:
        return absolute.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(absolute)


def _drop_comments_above(document: TOMLDocument, target: Table) -> None:
    """A comment block directly above a table's header belongs to it: blank those lines too.
    (They sit at the end of whatever was written before the header; blanking keeps tomlkit's
    indexes of the containers intact.)"""
    order = list(_in_order(document))
    at = next((i for i, (body, index) in enumerate(order) if body[index][1] is target), None)
    if at is None:
        return
    for body, index in reversed(order[:at]):
        if not isinstance(body[index][1], Comment):
            break
        body[index] = (None, Whitespace(""))


def _in_order(container: Container) -> Iterator[tuple[list[Any], int]]:
    """Every item of the document as (its container's body, index), in the order they are written."""
    body = container.body
    for index, (_, item) in enumerate(body):
        yield body, index
        if isinstance(item, Table):
            yield from _in_order(item.value)
        elif isinstance(item, AoT):
            for table in item.body:
                yield from _in_order(table.value)
