"""Several kept-open SMTP connections to one relay: a send takes whichever connection is free."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

from delivery.smtp import SmtpSender, SmtpSettings, verifying_context


class SmtpPool:
    """Up to `size` connections, each one transaction at a time (SMTP has no more per connection).

    A connection is opened on first need and kept open; a send waits for a free one. Every
    connection checks the server's certificate with one shared TLS context (building one loads the
    trust store). Errors are SmtpSender's.
    """

    def __init__(self, settings: SmtpSettings, *, size: int, tls: ssl.SSLContext | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        context = tls or verifying_context(settings.ca_file)
        self._senders = [SmtpSender(settings, tls_context=context) for _ in range(size)]
        self._free: asyncio.Queue[SmtpSender] | None = None

    @property
    def size(self) -> int:
        return len(self._senders)

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> str:
        """As SmtpSender.send, over the first free connection."""
        if self._free is None:  # made in the running loop, on first use
            self._free = asyncio.Queue()
            for one in self._senders:
                self._free.put_nowait(one)
        connection = await self._free.get()
        try:
            return await connection.send(message, sender=sender, recipients=recipients)
        finally:
            self._free.put_nowait(connection)

    async def close(self) -> None:
        """QUIT every open connection; safe to call twice."""
        for one in self._senders:
            await one.close()
        self._free = None
