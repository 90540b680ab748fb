"""`run --once` beside other instances: it keeps helping while another instance holds a lease (collecting
or sending), and stops counting an instance whose leases ran out."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update
from sqlmodel import select

from core.storage.models import Mailbox, utcnow
from postbud.runtime import Runtime
from postbud.shared_work import others_at_work

if TYPE_CHECKING:
    from tests.conftest import MakeConfig


@pytest.fixture
async def rt(make_config: MakeConfig) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_config())
    yield runtime
    await runtime.aclose()


def lease_mailboxes(rt: Runtime, owner: str | None, until: dt.datetime | None) -> None:
    with rt.store.transaction() as session:
        session.execute(update(Mailbox).values(lease_owner=owner, lease_expires_at=until))


async def test_another_instance_polling_a_mailbox_is_at_work_until_its_lease_runs_out(rt: Runtime) -> None:
    now = utcnow()
    with rt.store.read() as session:
        assert session.exec(select(Mailbox.id)).first() is not None  # the config's drop folder
    # GIVEN nobody holds anything: nothing to wait for
    assert not others_at_work(rt.store, rt.instance, now)
    # WHEN another instance polls the mailbox, THEN it is at work
    lease_mailboxes(rt, "other-host-1", now + dt.timedelta(seconds=60))
    assert others_at_work(rt.store, rt.instance, now)
    # ... but not once its lease ran out (it died), nor when the lease is this instance's own
    assert not others_at_work(rt.store, rt.instance, now + dt.timedelta(seconds=61))
    lease_mailboxes(rt, rt.instance, now + dt.timedelta(seconds=60))
    assert not others_at_work(rt.store, rt.instance, now)
