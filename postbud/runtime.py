"""Wiring: builds the store, metrics, connectors and decider that the daemon and the CLI share."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from collector.ledger import MailboxKey, sync_mailboxes
from collector.state import MailboxState
from connectors.base import Connector, ConnectorContext
from connectors.registry import build
from postbud.config import Config
from postbud.metrics import Metrics, StatusGauge
from postbud.storage import migrate
from postbud.storage.db import Store, make_engine
from postbud.storage.vault import Vault, load_keyring
from postbud.trace import count_by_status
from router.decision import Decider
from router.default import DefaultRoute

log = logging.getLogger(__name__)


def open_store(config: Config, *, upgrade: bool = True) -> Store:
    keyring = load_keyring(config.encryption.keyring, create=config.encryption.create_if_missing)
    engine = make_engine(config.database_url, echo=config.database.echo)
    if upgrade:
        migrate.upgrade(engine)
    return Store(engine, Vault(keyring))


@dataclass
class Runtime:
    config: Config
    store: Store
    metrics: Metrics
    decider: Decider
    mailboxes: list[MailboxKey] = field(default_factory=list)
    connectors: dict[int, Connector] = field(default_factory=dict)

    @classmethod
    def create(cls, config: Config, *, metrics: Metrics | None = None) -> Runtime:
        store = open_store(config)
        metrics = metrics or Metrics()
        metrics.add_collector(StatusGauge(lambda: count_by_status(store)))
        runtime = cls(config=config, store=store, metrics=metrics, decider=DefaultRoute(config))
        runtime.connect_mailboxes()
        return runtime

    def connect_mailboxes(self) -> None:
        """Sync mailbox rows with the config and build a connector for each new one."""
        self.mailboxes = sync_mailboxes(self.store, self.config)
        mailbox_configs = {
            (org.cvr, mb.name): mb for org in self.config.organisations for mb in org.mailboxes
        }
        for key in self.mailboxes:
            if key.id in self.connectors:
                continue
            context = ConnectorContext(
                mailbox=key.name,
                organisation=key.organisation_cvr,
                base_dir=self.config.base_dir,
                state=MailboxState(self.store, key.id),
            )
            try:
                self.connectors[key.id] = build(mailbox_configs[(key.organisation_cvr, key.name)], context)
            except Exception as exc:  # one misconfigured mailbox must not stop the others
                log.error("mailbox %s/%s cannot start: %s", key.organisation_cvr, key.name, exc)

    async def aclose(self) -> None:
        for connector in self.connectors.values():
            await connector.aclose()
        self.connectors.clear()
        self.store.dispose()
