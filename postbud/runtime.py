"""Wiring: builds the store, metrics, connectors and decider that the daemon and the CLI share."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector import leases
from collector.dispatch import Dispatcher, MailboxRuntime, settings_fingerprint
from collector.ledger import MailboxKey, sync_mailboxes
from collector.state import MailboxState
from connectors.base import ConnectorContext
from connectors.registry import build
from core.config import Config, MailboxConfig
from core.settings import SecretRef, is_secret_ref
from core.metrics import AutomationGauges, AutomationReading, DatabaseGauges, Metrics, OpsGauges
from core.notify import People, TraceNotifier
from core.storage import migrate
from core.storage.db import Store, make_engine
from core.storage.models import Mailbox, MailboxStatus, utcnow
from core.storage.vault import Vault, keyring_path, load_keyring
from delivery.recipients import RecipientsFile, load_recipients
from postbud.stats import ops_reading
from postbud.trace import metrics_reading
from router.by_rules import RuleSource, RulesDecider
from router.decision import Decider
from router.eligibility import RecipientEligibility
from router.learning import ModelDecider, Models
from router.realised import WINDOW, realised
from router.suggester.settings import SuggesterSettings
from router.default import DefaultRoute
from delivery import outbox
from delivery.errors import RecipientsFileError
from delivery.pauses import ChannelPauses
from postbud.instance import claim_instance, release_instance
from postbud.parsing import configure_parsing
from postbud.reload import (RECIPIENTS_LOADED, RECIPIENTS_REFUSED, RULES_LOADED, RULES_REFUSED, RecipientsWatcher,
                            record_reload)
from rules import RuleErrors, RuleIssue, RuleSet
from rules import load as load_rules

if TYPE_CHECKING:  # the daemon's HTTP listener only (not run --once)
    from starlette.routing import BaseRoute

log = logging.getLogger(__name__)


def load_recipient_directory(config: Config) -> RecipientsFile | None:
    if config.recipients.file is None:
        return None
    return load_recipients(config.recipients.file)


def open_models(config: Config, store: Store) -> Models:
    settings = config.model
    if settings.signing_key is not None:
        key = settings.signing_key.reveal().encode("utf-8")
    else:  # bound to the keyring: a new keyring means models are refused and retrained
        active = store.vault.keyring.keys[store.vault.keyring.active]
        key = hmac.new(active, b"postbud model signing", hashlib.sha256).digest()
    return Models(store, settings.folder, key,
                  SuggesterSettings(target_precision=settings.target_precision, min_examples=settings.min_examples))


def revealed_settings(mailbox: MailboxConfig, base_dir: Path) -> dict[str, Any]:
    """The mailbox's settings with each secret's value in place of its reference (for the fingerprint
    only, never logged); an unreadable secret stands as its reference and the error."""
    out: dict[str, Any] = {}
    for name, value in mailbox.connector_settings.items():
        if is_secret_ref(value):
            try:
                value = {"value": SecretRef.model_validate(value, context={"base_dir": base_dir}).reveal()}
            except (LookupError, ValueError) as exc:
                value = {"ref": value, "missing": str(exc)}
        out[name] = value
    return out


def open_store(config: Config, *, upgrade: bool = True) -> Store:
    keyring = load_keyring(config.encryption.keyring, create=config.encryption.create_if_missing)
    engine = make_engine(config.database_url, echo=config.database.echo)
    if upgrade:
        migrate.upgrade(engine)
    # The keyring file can change under us (`postbud keys rotate`): the vault watches it.
    return Store(engine, Vault(keyring, source=keyring_path(config.encryption.keyring)))


def recover_own_work(store: Store, instance: str) -> None:
    """Leases this instance held when it stopped are its own: its work is taken up at once, not after
    the lease period (outbox rows keep what says whether their send may have completed)."""
    mailboxes = leases.release_all(store, instance)
    rows = outbox.recover_own(store, instance, now=utcnow())
    if mailboxes or rows:
        log.info("instance %s resumes its own work: %d mailboxes, %d deliveries in flight", instance,
                 mailboxes, rows)


@dataclass
class Runtime:
    config: Config
    store: Store
    metrics: Metrics
    decider: Decider
    dispatcher: Dispatcher
    notifier: TraceNotifier
    rule_source: RuleSource | None = None
    models: Models | None = None
    recipients: RecipientsFile | None = None
    mailboxes: list[MailboxKey] = field(default_factory=list)
    recipients_watcher: RecipientsWatcher | None = None
    instance: str = ""
    instance_lock: int | None = None
    pauses: ChannelPauses | None = None

    @classmethod
    def create(cls, config: Config, *, metrics: Metrics | None = None) -> Runtime:
        configure_parsing(config)
        store = open_store(config)
        instance, lock = claim_instance(config)
        recover_own_work(store, instance)
        metrics = metrics or Metrics()
        metrics.add_collector(DatabaseGauges(lambda: metrics_reading(store)))
        metrics.add_collector(OpsGauges(lambda: ops_reading(store)))
        notifier = TraceNotifier(store, {o.cvr: o.administrators for o in config.organisations},
                                 {o.cvr: o.processors for o in config.organisations})
        dispatcher = Dispatcher(store, metrics, config.collector, notifier,
                                owner=instance, jitter=config.schedule.jitter_seconds)
        runtime = cls(config, store, metrics, DefaultRoute(config), dispatcher, notifier, instance=instance,
                      instance_lock=lock,
                      pauses=ChannelPauses(config.delivery.retry_base_seconds, config.delivery.retry_max_seconds))
        runtime.configure_routing()
        metrics.add_collector(AutomationGauges(runtime.automation_readings))
        runtime.connect_mailboxes()
        return runtime

    def configure_routing(self, recipients: RecipientsFile | None = None) -> None:
        """The decision chain: rules (when configured), the model (when sure), the organisation's fallback.

        Without `recipients` the configured recipients file is (re)read and watched from now on.
        """
        if recipients is None:
            path = self.config.recipients.file
            self.recipients_watcher = RecipientsWatcher(path) if path is not None else None
            if self.recipients_watcher is not None:
                recipients = self.recipients_watcher.load()
                record_reload(self.store, RECIPIENTS_LOADED, "recipients file loaded", {"file": str(path)})
        self.recipients = recipients
        fallback: Decider = DefaultRoute(self.config)
        self.models = open_models(self.config, self.store) if self.config.model.enabled else None
        if self.models is not None:
            fallback = ModelDecider(self.models, fallback, RecipientEligibility(self.store, self.recipients))
        if self.config.rules.directory is None:
            self.rule_source, self.decider = None, fallback
            return
        source = RuleSource(self.config.rules.directory, self.recipients, self.metrics, on_change=self._rules_changed)
        self.rule_source = source
        self.decider = RulesDecider(lambda: source.current, self.recipients, fallback)

    def _rules_changed(self, found: RuleSet | list[RuleIssue]) -> None:
        directory = str(self.config.rules.directory)
        if isinstance(found, RuleSet):
            record_reload(self.store, RULES_LOADED, f"rules version {found.version} active",
                          {"directory": directory, "version": found.version, "rules": len(found.rules)})
        else:
            record_reload(self.store, RULES_REFUSED, "changed rules refused; the last good rules stay active",
                          {"directory": directory, "issues": [str(i) for i in found[:20]]})

    def refresh_recipients(self) -> None:
        """Take a changed recipients file when it loads and the rules still check against it."""
        watcher = self.recipients_watcher
        found = watcher.poll() if watcher is not None else None
        if watcher is None or found is None:
            return
        problem = None
        if isinstance(found, RecipientsFileError):
            problem = str(found)
        elif self.config.rules.directory is not None:
            try:
                load_rules(self.config.rules.directory, found)
            except RuleErrors as exc:
                problem = "the rules do not check against it: " + "; ".join(str(i) for i in exc.issues[:5])
        if isinstance(found, RecipientsFileError) or problem is not None:
            log.error("changed recipients file refused, the last good one stays active: %s", problem)
            record_reload(self.store, RECIPIENTS_REFUSED, "changed recipients file refused; the last good one "
                          "stays active", {"file": str(watcher.path), "problem": problem})
            return
        log.info("recipients file reloaded: %s", watcher.path)
        record_reload(self.store, RECIPIENTS_LOADED, "recipients file reloaded", {"file": str(watcher.path)})
        self.configure_routing(found)

    def automation_readings(self) -> list[AutomationReading]:
        """Per organisation: the model's automatic routings of the last 30 days and their corrections."""
        if self.models is None:
            return []
        now = datetime.now(timezone.utc)
        readings = []
        for org in self.config.organisations:
            figures = realised(self.store, org.cvr, since=now - WINDOW)
            paused = self.models.state(org.cvr).paused is not None
            readings.append(AutomationReading(org.cvr, figures.routed_alone, figures.corrected,
                                              self.config.model.target_precision, paused))
        return readings

    def connect_mailboxes(self) -> None:
        """Sync mailbox rows with the config; build a connector for each new or changed mailbox.

        A mailbox stopped for re-authentication starts again when its configured credentials (the
        secrets' values, not their references) differ from those that failed. A mailbox that cannot
        start is marked `error` with the reason (logged, notified, on /readyz and /metrics); it starts
        when a reload fixes it.
        """
        self.mailboxes = sync_mailboxes(self.store, self.config)
        self.dispatcher.organisations = frozenset(org.cvr for org in self.config.organisations)
        configs: dict[tuple[str, str], MailboxConfig] = {
            (org.cvr, mb.name): mb for org in self.config.organisations for mb in org.mailboxes
        }
        current = self.dispatcher.mailboxes
        names = {org.cvr: org.name for org in self.config.organisations}
        wanted: dict[int, MailboxRuntime] = {}
        for key in self.mailboxes:
            mb_config = configs[(key.organisation_cvr, key.name)]
            fingerprint = settings_fingerprint(revealed_settings(mb_config, self.config.base_dir),
                                               key=self._fingerprint_key())
            existing = current.get(key.id)
            if existing is not None and existing.fingerprint == fingerprint:
                wanted[key.id] = existing
                continue
            context = ConnectorContext(
                mailbox=key.name,
                organisation=key.organisation_cvr,
                base_dir=self.config.base_dir,
                state=MailboxState(self.store, key.id),
                organisation_name=names.get(key.organisation_cvr, ""),
            )
            try:
                connector = build(mb_config, context)
            except Exception as exc:  # one misconfigured mailbox must not stop the others
                self._cannot_start(key, fingerprint, exc)
                continue
            self._resume_if_startable(key, fingerprint)
            interval = mb_config.poll_interval_seconds or self.config.schedule.poll_interval_seconds
            wanted[key.id] = MailboxRuntime(key, connector, interval, fingerprint)
        self.dispatcher.mailboxes = wanted

    def _fingerprint_key(self) -> bytes:
        active = self.store.vault.keyring.keys[self.store.vault.keyring.active]
        return hmac.new(active, b"postbud credentials fingerprint", hashlib.sha256).digest()

    def _cannot_start(self, key: MailboxKey, fingerprint: str, exc: Exception) -> None:
        reason = f"cannot start: {type(exc).__name__}: {exc}"[:500]
        log.error("mailbox %s/%s %s", key.organisation_cvr, key.name, reason)
        with self.store.transaction() as session:
            row = session.get(Mailbox, key.id)
            if row is None:
                return
            changed = row.status != MailboxStatus.ERROR or row.last_error != reason
            row.status = MailboxStatus.ERROR
            row.last_error = reason
            row.credentials_fingerprint = fingerprint
        if changed:
            self.notifier.notify(
                key.organisation_cvr, f"Mailbox {key.name} ({key.provider}) cannot start",
                f"postbud cannot start polling this mailbox: {reason}\n"
                "Fix its configuration (or the secret it names) and reload (SIGHUP) or restart postbud.")

    def _resume_if_startable(self, key: MailboxKey, fingerprint: str) -> None:
        with self.store.transaction() as session:
            row = session.get(Mailbox, key.id)
            if row is None:
                return
            if row.status == MailboxStatus.ERROR or (
                    row.status == MailboxStatus.NEEDS_REAUTH and row.credentials_fingerprint != fingerprint):
                log.info("mailbox %s/%s: %s lifted (its configuration changed); polling resumes",
                         key.organisation_cvr, key.name, row.status)
                row.status = MailboxStatus.ACTIVE
                row.last_error = None
                row.next_poll_at = None

    async def reconfigure(self, config: Config) -> None:
        """Take a reloaded configuration: new mailboxes start polling, removed ones stop."""
        old = dict(self.dispatcher.mailboxes)
        self.config = config
        self.notifier.people = People({o.cvr: o.administrators for o in config.organisations},
                                      {o.cvr: o.processors for o in config.organisations})
        configure_parsing(config)
        self.configure_routing()
        self.connect_mailboxes()
        for mailbox_id, mb in old.items():
            if self.dispatcher.mailboxes.get(mailbox_id) is not mb and mailbox_id not in self.dispatcher.running:
                await mb.connector.aclose()

    def http_routes(self) -> list[BaseRoute]:
        """Routes the stages add to the daemon's HTTP listener (the read-only API when enabled)."""
        from postbud.confirm_page import confirm_route
        from postbud.preferences_page import preferences_routes

        routes: list[BaseRoute] = [
            confirm_route(self.store, directory=lambda: self.recipients,
                          trust_store=self.config.delivery.trust_store, config=lambda: self.config),
            *preferences_routes(self.store, lambda: self.config, lambda: self.recipients),
        ]
        if self.config.api.enabled:
            from postbud.api import TokenTable, api_mount

            routes.append(api_mount(self.store, TokenTable.from_refs(dict(self.config.api.tokens)), self.metrics,
                                    config=lambda: self.config))
        return routes

    async def aclose(self) -> None:
        for mb in self.dispatcher.mailboxes.values():
            await mb.connector.aclose()
        self.dispatcher.mailboxes = {}
        self.store.dispose()
        release_instance(self.instance_lock)
        self.instance_lock = None
