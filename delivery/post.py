"""Physical post channel: each PDF of a letter printed and mailed by the provider (post_api.py), polled until posted."""

from __future__ import annotations

import asyncio
import time

import httpx

from core.config import PostSettings
from delivery.errors import PostPermanent, PostTransient
from delivery.outbound import Outbound, Sent
from delivery.post_api import Letter, PostApi
from delivery.post_api import post_client as post_client


class PostChannel:
    """The `post` channel (see `delivery.channels.Channel`), with one deliberate difference: paper
    cannot be encrypted to a key, so the PDFs reach the provider in clear over verified TLS; an
    organisation chooses this per recipient (README, Security).

    Every PDF is filed under a reference derived from the outbox row, so a retry finds the letter an
    earlier attempt created instead of printing it twice.
    """

    name = "post"

    def __init__(self, client: httpx.AsyncClient, settings: PostSettings) -> None:
        self._client = client
        self._settings = settings
        self._api = PostApi(client, settings)

    async def send(self, item: Outbound) -> Sent:
        address = item.recipient.postal_address
        if address is None:
            raise PostPermanent(f"recipient {item.recipient.id} has no postal_address")
        pdfs = [f for f in item.message.files()
                if f.media_type == "application/pdf" or f.name.lower().endswith(".pdf")]
        if not pdfs:
            raise PostPermanent("nothing to print: the letter carries no PDF")
        letters: list[Letter] = []
        for index, pdf in enumerate(pdfs):
            reference = f"{item.token}-{index}"
            letter = await self._api.find(reference)
            if letter is None:
                letter = await self._api.create(pdf.content, f"letter-{index + 1}.pdf", reference, address)
            if letter.status in ("valid", "validating", "created"):
                letter = await self._api.send(letter.id)
            letters.append(await self._until_final(letter))
        failed = [x for x in letters if x.failed]
        detail = {"letters": [{"id": x.id, "status": x.status, "price": x.price, "currency": x.currency}
                              for x in letters],
                  "cost": round(sum(x.price or 0.0 for x in letters), 2),
                  "currency": next((x.currency for x in letters if x.currency), None)}
        if failed:
            raise PostPermanent(f"the provider did not post letter {failed[0].id}: {failed[0].status}")
        pending = [x for x in letters if not x.posted]
        if pending:
            raise PostTransient(f"letter {pending[0].id} is {pending[0].status} at the provider; looked at again later")
        cost = f"{detail['cost']:.2f} {detail['currency'] or ''}".strip()
        return Sent(f"posted {len(letters)} letter(s), cost {cost}", None, detail)

    async def _until_final(self, letter: Letter) -> Letter:
        deadline = time.monotonic() + self._settings.poll_seconds
        while not (letter.posted or letter.failed) and time.monotonic() < deadline:
            await asyncio.sleep(self._settings.poll_interval_seconds)
            letter = await self._api.status(letter.id)
        return letter

    async def aclose(self) -> None:
        await self._client.aclose()
