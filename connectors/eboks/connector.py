"""The e-Boks connector: one company mailbox (a share of a delegate's e-Boks) over the mobile XML API.

Reading a message's `/content` marks it read on the server (PROTOCOLS.md §1.5), which happens at
fetch, before postbud commits: e-Boks is the exception to "acknowledged at the provider only after
delivery". The protocol has no other mark-read, move or delete call, and postbud invents none. So the
listing offers unread messages *and* the ones fetched but not yet acknowledged (kept in
`ConnectorContext.state` as `pending`); acknowledging drops a message from `pending` (no request),
after which it stays read. Contract: `connectors.base.Connector`.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import ClassVar

import httpx

from connectors import watchdog
from connectors.base import (
    AcknowledgePolicy,
    AuthError,
    Capability,
    ConnectorContext,
    ConnectorSettings,
    Fetched,
    MessageRef,
    Page,
    PermanentError,
    TransientError,
)
from connectors.eboks.errors import translated
from connectors.eboks.normalize import Part, normalize
from connectors.eboks.session import EboksSession
from connectors.eboks.settings import EboksSettings
from connectors.eboks.xmlparse import (
    FolderInfo,
    MessageInfo,
    parse,
    parse_folders,
    parse_message,
    parse_messages,
    parse_shares,
)

log = logging.getLogger(__name__)

OWN_MAILBOX = "0"


class EboksConnector:
    """A company's e-Boks mailbox, reached as one share of a delegate's personal access."""

    name: ClassVar[str] = "eboks"
    Settings: ClassVar[type[ConnectorSettings]] = EboksSettings
    # Reading /content marks a message read at e-Boks: the provider forgets it at fetch, not at ack.
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.MARK_READ})
    acknowledges_at_fetch: ClassVar[bool] = True
    default_acknowledge: ClassVar[AcknowledgePolicy] = AcknowledgePolicy.AFTER_DELIVERY

    def __init__(self, settings: EboksSettings, context: ConnectorContext, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._session = EboksSession(settings, context.state, transport=transport)
        self._share: tuple[str, str | None] | None = None
        self._folders: tuple[str, ...] | None = None

    async def _mailbox(self) -> tuple[str, str, tuple[str, ...]]:
        """(user id, share id, folder ids) of this instance's company, resolved once per connector."""
        uid = await self._session.user_id()
        if self._share is None:
            self._share = await self._resolve_share(uid)
        share_id = self._share[0]
        if self._folders is None:
            response = await self._session.get(f"{uid}/{share_id}/mail/folders", what="list folders")
            with translated("list folders"):
                tree = parse_folders(parse(response.content, response.headers.get("content-type")))
            self._folders = tuple(self._pick_folder(tree, wanted) for wanted in self._settings.folders)
        return uid, share_id, self._folders

    async def _resolve_share(self, uid: str) -> tuple[str, str | None]:
        key = self._settings.share
        if key == OWN_MAILBOX:
            return OWN_MAILBOX, None
        response = await self._session.get(f"{uid}/0/shares", params={"listType": "active"}, what="list shares")
        with translated("list shares"):
            shares = parse_shares(parse(response.content, response.headers.get("content-type")))
        for share in shares:
            if key in (share.share_id, share.name):
                return share.share_id, share.name
        raise AuthError(
            f"e-Boks: the delegate has no active share {key!r} (CVR {self._settings.cvr}); the company "
            "must grant or renew the access, or fix `shares` in the configuration"
        )

    def _pick_folder(self, tree: tuple[FolderInfo, ...], wanted: str) -> str:
        for top in tree:
            for folder in top.walk():
                if wanted in (folder.folder_id, folder.name) or wanted.lower() == folder.name.lower():
                    return folder.folder_id
        raise AuthError(f"e-Boks: no folder {wanted!r} in the mailbox of CVR {self._settings.cvr}; "
                        "fix `folders` in the configuration")

    def _pending(self) -> list[str]:
        pending = self._session.data.setdefault("pending", [])
        assert isinstance(pending, list)
        return pending

    async def list_new(self, cursor: str | None) -> Page:
        uid, share_id, folders = await self._mailbox()
        index, skip = _parse_cursor(cursor)
        if index >= len(folders):
            return Page((), None, False)
        take = self._settings.page_size
        folder_id = folders[index]
        response = await self._session.request(
            "GET", f"{uid}/{share_id}/mail/folder/{folder_id}", params={"skip": skip, "take": take},
            what="list messages", accept=frozenset({404}),
        )
        if response.status_code == 404:
            # The share or folder went away since it was resolved: look both up again next time,
            # which reports a share the company withdrew as an AuthError.
            self._share = self._folders = None
            raise TransientError(f"e-Boks list messages: folder {folder_id} is gone (HTTP 404)")
        with translated("list messages"):
            infos = parse_messages(parse(response.content, response.headers.get("content-type")))
        pending = set(self._pending())
        refs = tuple(
            MessageRef(key=info.message_id, handle=f"{folder_id}/{info.message_id}",
                       meta={"folder_id": folder_id})
            for info in infos
            if self._settings.include_read or info.unread or info.message_id in pending
        )
        # A page shorter than `take` is the folder's last (Net-Eboks stops the same way).
        index, skip = (index + 1, 0) if len(infos) < take else (index, skip + take)
        more = index < len(folders)
        return Page(refs, f"{index}:{skip}" if more else None, more)

    async def _download(self, path: str, name: str, fmt: str, what: str) -> Part:
        response = await self._session.get(path, what=what)
        content_type = response.headers.get("content-type")
        if "html" in (content_type or "").lower() and "htm" not in fmt:
            # A proxy's or maintenance page answered 200 in place of the document: never deliver it.
            raise TransientError(f"e-Boks {what}: an HTML page came back instead of the {fmt or 'document'}")
        return Part(name, fmt, response.content, content_type)

    async def fetch(self, ref: MessageRef) -> Fetched:
        uid, share_id, _ = await self._mailbox()
        folder_id, _, message_id = ref.handle.partition("/")
        base = f"{uid}/{share_id}/mail/folder/{folder_id}/message/{message_id}"
        detail = await self._session.get(base, what="message detail")
        with translated("message detail", raw=detail.content):
            info = parse_message(parse(detail.content, detail.headers.get("content-type")))
        pending = self._pending()
        if message_id not in pending:
            # Recorded before /content marks it read, so a crash before the commit cannot lose it.
            pending.append(message_id)
            await self._session.persist()
        body = await self._download(f"{base}/content", info.subject, info.format, "message content")
        parts = [
            await self._download(
                f"{uid}/{share_id}/mail/folder/{folder_id}/message/{att.attachment_id}/content",
                att.name, att.format, "attachment content",
            )
            for att in info.attachments
        ]
        _refuse_empty(info, body, parts, detail.content)
        # Text extraction reads sender-controlled PDFs: in a killable worker under the letter budget.
        try:
            message = await watchdog.run(partial(normalize, cvr=self._settings.cvr,
                                                 share_name=self._share[1] if self._share else None),
                                         info, body, parts)
        except PermanentError as exc:
            raise PermanentError(f"e-Boks message {ref.key}: {exc}", raw=detail.content) from None
        return Fetched(ref=ref, raw=detail.content, raw_media_type="application/xml", message=message)

    async def acknowledge(self, ref: MessageRef) -> None:
        """Forget the message as pending; harmless when repeated, and no request to e-Boks.

        The /content download at fetch already marked it read, the only mark-read the protocol has
        (PROTOCOLS.md §1.5: no client documents an explicit call; open question 3).
        """
        _, _, message_id = ref.handle.partition("/")
        pending = self._pending()
        if message_id in pending:
            pending.remove(message_id)
            await self._session.persist()

    async def aclose(self) -> None:
        await self._session.aclose()


def _refuse_empty(info: MessageInfo, body: Part, parts: list[Part], raw: bytes) -> None:
    """0-byte documents are what e-Boks serves a low-assurance session for public senders (Postboks#36)."""
    empty = [p.name or "body" for p in (body, *parts) if not p.content]
    if empty:
        raise PermanentError(
            f"e-Boks message {info.message_id}: {len(empty)} document(s) came back as 0 bytes. e-Boks does "
            "this for mail from public authorities when the session has low assurance (activation-code "
            "logon); log on with a MitID-registered RSA device (auth_mode = \"rsa\") to read it",
            raw=raw,
        )


def _parse_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        index, skip = (int(part) for part in cursor.split(":", 1))
    except ValueError as exc:
        raise PermanentError(f"e-Boks: unreadable listing cursor {cursor!r}") from exc
    return max(index, 0), max(skip, 0)
