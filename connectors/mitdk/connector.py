"""The mit.dk connector: one company mailbox through mit.dk's viewing-client API (PROTOCOLS.md §2).

Listing pages through `messages/query` (offset `startIndex`, newest first) and offers unread
messages; fetching downloads every file; acknowledging marks the message read with `If-Match` on
its version, re-reading it after a 409. Contract: `connectors.base.Connector`.
"""

from __future__ import annotations

import json
import logging
from functools import partial
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from connectors import watchdog
from connectors.base import (
    AcknowledgePolicy,
    Capability,
    ConfigurationError,
    ConnectorContext,
    ConnectorSettings,
    Fetched,
    MessageRef,
    Page,
    PermanentError,
    TransientError,
)
from connectors.mitdk.client import MitdkClient
from connectors.mitdk.errors import json_body, translated
from connectors.mitdk.mailboxes import choose_mailbox, describe, seen_mailboxes, summary
from connectors.mitdk.normalize import file_refs, normalize
from connectors.mitdk.settings import MitdkSettings

log = logging.getLogger(__name__)

_GONE = frozenset({404, 409, 412})  # gone, or If-Match no longer the current version
#: The listing fields a later fetch and acknowledge need; the rest of a result is not kept in the handle.
_HANDLE_FIELDS = ("id", "dataSource", "mailboxId", "version", "label", "sender", "recipient",
                  "receivedDateTime", "read", "messageType", "reply", "postType", "forwardData", "documents")


class MitdkConnector:
    """A company's mailbox on mit.dk, reached with the token pair of one MitID onboarding."""

    name: ClassVar[str] = "mitdk"
    Settings: ClassVar[type[ConnectorSettings]] = MitdkSettings
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.MARK_READ})
    default_acknowledge: ClassVar[AcknowledgePolicy] = AcknowledgePolicy.AFTER_DELIVERY

    def __init__(self, settings: MitdkSettings, context: ConnectorContext, *,
                 clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._client = MitdkClient(settings, context.state, clock=clock, transport=transport)
        self._mailbox: str | None = None
        self._folders: tuple[str, ...] | None = None
        self._organisation_name = context.organisation_name
        # Messages whose mark-read had an unknown outcome (the answer was lost): their version may have
        # moved on, so the next attempt reads the current one instead of re-sending a stale If-Match.
        self._versions: dict[str, Any] = {}
        self._uncertain: set[str] = set()

    @property
    def refreshes(self) -> int:
        return self._client.refreshes

    async def _resolve(self) -> tuple[str, tuple[str, ...]]:
        """(mailbox id, folder ids) of this instance's company, looked up once per connector."""
        if self._mailbox is None:
            self._mailbox = self._pick_mailbox(await self._json("GET", "mailboxes", "list mailboxes"))
        if self._folders is None:
            source = self._settings.data_source
            body = await self._json("POST", "folders/query", "list folders",
                                    {"mailboxes": {source: self._mailbox}})
            folders = body.get("folders") if isinstance(body, dict) else None
            if not isinstance(folders, dict):
                raise TransientError("mit.dk list folders: the answer has no folders")
            picked: list[str] = []
            for wanted in self._settings.folders:
                found = [f for f in folders.get(wanted) or [] if isinstance(f, dict) and f.get("id") is not None]
                if not found:
                    seen = ", ".join(sorted(str(k) for k in folders)) or "none"
                    raise ConfigurationError(f"mit.dk: mailbox {self._mailbox} has no {wanted} folder; fix "
                                             f"`folders` (folder types seen: {seen})")
                picked.append(str(found[0]["id"]))  # Net-MitDK takes the first folder of each type
            self._folders = tuple(picked)
        return self._mailbox, self._folders

    def _pick_mailbox(self, body: Any) -> str:
        """The company's mailbox among those the listing offers (§2.3: id, dataSource, ownerName, and
        whatever type field a mailbox carries); no match or several is a configuration error that
        lists what was seen."""
        boxes = [m for m in seen_mailboxes(body) if m.get("dataSource") == self._settings.data_source]
        matches, how = choose_mailbox(boxes, mailbox_id=self._settings.mailbox_id,
                                      owner_name=self._settings.owner_name, cvr=self._settings.cvr,
                                      organisation_name=self._organisation_name)
        if len(matches) != 1:
            raise ConfigurationError(
                f"mit.dk: {len(matches) or 'no'} mailboxes match {how} for CVR {self._settings.cvr}; set "
                f"mailbox_id (or owner_name) to one of: {describe(boxes)} "
                "(`postbud connectors probe MAILBOX` lists them)")
        return str(matches[0]["id"])

    async def probe(self) -> list[dict[str, str]]:
        """The mailboxes the token pair sees, each with whether this configuration picks it."""
        body = await self._json("GET", "mailboxes", "list mailboxes")
        boxes = seen_mailboxes(body)
        eligible = [m for m in boxes if m.get("dataSource") == self._settings.data_source]
        matches, _ = choose_mailbox(eligible, mailbox_id=self._settings.mailbox_id,
                                    owner_name=self._settings.owner_name, cvr=self._settings.cvr,
                                    organisation_name=self._organisation_name)
        chosen = {str(m.get("id")) for m in matches} if len(matches) == 1 else set()
        return [{**summary(m), "chosen": "yes" if str(m.get("id")) in chosen else ""} for m in boxes]

    async def _json(self, method: str, path: str, what: str, body: Any = None) -> Any:
        response = await self._client.request(method, path, what=what, body=body)
        return json_body(response, what)

    async def list_new(self, cursor: str | None) -> Page:
        mailbox, folders = await self._resolve()
        index, start = _parse_cursor(cursor)
        if index >= len(folders):
            return Page((), None, False)
        size = self._settings.page_size
        source = self._settings.data_source
        response = await self._client.request("POST", "messages/query", what="list messages", body={
            "any": [],
            "folders": [{"dataSource": source, "foldersId": [folders[index]], "mailboxId": mailbox,
                         "startIndex": start}],
            "size": size,
            "sortFields": ["receivedDateTime:DESC"],
        }, accept=frozenset({404}))
        if response.status_code == 404:
            # The mailbox or folder went away since it was resolved: look both up again next time.
            self._mailbox = self._folders = None
            raise TransientError("mit.dk list messages: the mailbox or folder is gone (HTTP 404)")
        body = json_body(response, "list messages")
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise TransientError("mit.dk list messages: the answer has no results")
        refs: list[MessageRef] = []
        for message in results:
            if not isinstance(message, dict) or message.get("id") in (None, ""):
                log.warning("mit.dk listed a message without an id in folder %s; skipped", folders[index])
                continue
            if message.get("read") is True and not self._settings.include_read:
                continue
            kept = {k: message[k] for k in _HANDLE_FIELDS if k in message}
            kept.setdefault("dataSource", source)
            kept.setdefault("mailboxId", mailbox)
            refs.append(MessageRef(key=str(message["id"]), handle=json.dumps(kept, separators=(",", ":"))))
        # A page shorter than `size` is the folder's last (Net-MitDK stops the same way).
        index, start = (index + 1, 0) if len(results) < size else (index, start + size)
        more = index < len(folders)
        return Page(tuple(refs), f"{index}:{start}" if more else None, more)

    async def fetch(self, ref: MessageRef) -> Fetched:
        raw = ref.handle.encode("utf-8")
        message = _message(ref)
        with translated("message", raw=raw):
            refs = file_refs(message)
        base = _message_path(message)
        contents: dict[str, bytes] = {}
        for file in refs:
            response = await self._client.request(
                "GET", f"{base}/documents/{file.document_id}/files/{file.file_id}/content",
                what="file content")
            declared = response.headers.get("content-type", "").lower()
            if "html" in declared and "html" not in file.encoding_format.lower():
                raise TransientError("mit.dk file content: an HTML page came back instead of the file")
            contents[file.file_id] = response.content
        # Text extraction reads sender-controlled PDFs: in a killable worker under the letter budget.
        try:
            normalized = await watchdog.run(partial(normalize, cvr=self._settings.cvr), message, contents)
        except PermanentError as exc:
            raise PermanentError(f"mit.dk message {ref.key}: {exc}", raw=raw) from None
        return Fetched(ref=ref, raw=raw, raw_media_type="application/json", message=normalized)

    async def acknowledge(self, ref: MessageRef) -> None:
        """Mark read with If-Match on the version; after a 409/412, or when an earlier attempt's outcome
        is unknown, re-read the current version first (harmless when repeated)."""
        message = _message(ref)
        path = _message_path(message)
        version = self._versions.get(ref.key, message.get("version"))
        for _ in range(self._settings.mark_read_attempts):
            if ref.key in self._uncertain:
                current = await self._client.request("GET", path, what="re-read message", accept=frozenset({404}))
                if current.status_code == 404:
                    self._forget(ref.key)
                    return
                body = json_body(current, "re-read message")
                if not isinstance(body, dict):
                    raise TransientError("mit.dk re-read message: the answer is not a message")
                if body.get("read") is True:
                    self._forget(ref.key)
                    return  # someone (or an earlier attempt of ours) already marked it
                version = self._versions[ref.key] = body.get("version")
                self._uncertain.discard(ref.key)
            self._uncertain.add(ref.key)  # until an answer says otherwise
            response = await self._client.request(
                "PATCH", path, what="mark read", body={"read": True},
                headers={"If-Match": str(version)}, accept=_GONE)
            if response.is_success:
                json_body(response, "mark read")  # an HTML 200 from a proxy is no acknowledgement
                self._forget(ref.key)
                return
            if response.status_code == 404:
                log.info("mit.dk message %s is gone; nothing to mark read", ref.key)
                self._forget(ref.key)
                return
            # 409/412: the version moved on; the loop re-reads it (the key stays uncertain)
        raise TransientError(f"mit.dk mark read: message {ref.key} kept changing "
                             f"({self._settings.mark_read_attempts} attempts)")

    def _forget(self, key: str) -> None:
        self._uncertain.discard(key)
        self._versions.pop(key, None)

    async def aclose(self) -> None:
        await self._client.aclose()


def _message(ref: MessageRef) -> dict[str, Any]:
    try:
        message = json.loads(ref.handle)
    except ValueError as exc:
        raise PermanentError(f"mit.dk: unreadable handle for {ref.key}") from exc
    if not isinstance(message, dict):
        raise PermanentError(f"mit.dk: unreadable handle for {ref.key}")
    return message


def _message_path(message: dict[str, Any]) -> str:
    try:
        return f"{message['dataSource']}/mailboxes/{message['mailboxId']}/messages/{message['id']}"
    except KeyError as exc:
        raise PermanentError(f"mit.dk: the message lacks {exc.args[0]}") from exc


def _parse_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    try:
        index, start = (int(part) for part in cursor.split(":", 1))
    except ValueError as exc:
        raise PermanentError(f"mit.dk: unreadable listing cursor {cursor!r}") from exc
    return max(index, 0), max(start, 0)
