"""The configuration's models: the frozen, typed sections the config file (core/configfile.py) is read into.

Relative paths resolve against the config file's folder. Secrets never sit in the file: a secret
is a table `{ env = "NAME" }` or `{ file = "path" }`, revealed only when a component needs it.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from core.oidc_settings import OidcSettings
from core.notice_settings import NoticeSettings
from core.settings import Cvr, Frozen, RelPath, SecretRef, TomlValue, section

ENV_DATABASE_URL = "POSTBUD_DATABASE_URL"


class ServiceSettings(Frozen):
    # Unset: a name kept in `instance_file`, so a restarted instance recognises its own leases.
    instance: str | None = None
    instance_file: RelPath = Path("var/instance.id")


class DatabaseSettings(Frozen):
    url: str = "sqlite:///var/postbud.db"
    echo: bool = False


class EncryptionSettings(Frozen):
    keyring: RelPath = Path("var/keys/keyring.json")
    create_if_missing: bool = True


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    """CIDR networks (IPv4 or IPv6; a bare address is its own network), written back normalised."""
    parsed = []
    for value in values:
        try:
            parsed.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{value!r} is not a network: write an address or CIDR such as 192.0.2.0/24 "
                             f"or 2001:db8::/48") from None
    return tuple(parsed)


Networks = Annotated[tuple[str, ...], AfterValidator(_networks)]


class HttpSettings(Frozen):
    enabled: bool = True
    listen: str = "127.0.0.1:9464"
    # Reverse proxies whose X-Forwarded-For is believed; from anyone else the header is ignored.
    trusted_proxies: Networks = ()

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, not {value!r}")
        return value


class ScheduleSettings(Frozen):
    poll_interval_seconds: float = Field(default=300.0, gt=0)
    jitter_seconds: float = Field(default=10.0, ge=0)
    route_interval_seconds: float = Field(default=5.0, gt=0)
    deliver_interval_seconds: float = Field(default=5.0, gt=0)
    housekeeping_interval_seconds: float = Field(default=3600.0, gt=0)
    batch_size: int = Field(default=100, gt=0)


class CollectorSettings(Frozen):
    """How polling is spread: leases (shared between instances), concurrency, retries, breaker."""

    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    max_concurrent_polls: int = Field(default=50, gt=0)
    max_concurrent_per_provider: int = Field(default=20, gt=0)
    retries: int = Field(default=3, ge=1)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    breaker_max_cooldown_seconds: float = Field(default=600.0, gt=0)
    poll_request_budget: int = Field(default=1000, ge=10)
    claim_batch: int = Field(default=10, gt=0)
    # One budget per letter for parsing and text extraction, in killable worker processes.
    letter_seconds: float = Field(default=30.0, gt=0)
    letter_memory_mb: int = Field(default=1024, ge=256)
    parse_workers: int = Field(default=2, ge=1, le=64)


class RulesSettings(Frozen):
    """The administrators' routing rules (see rules/README.md); none configured: default routes only."""

    directory: RelPath | None = None
    regex_timeout_seconds: float = Field(default=0.05, gt=0)
    budget_seconds: float = Field(default=0.5, gt=0)


class ModelSettings(Frozen):
    """The ML suggester: learns from confirmed placements, routes alone only above its threshold."""

    enabled: bool = True
    folder: RelPath = Path("var/models")
    train_interval_seconds: float = Field(default=3600.0, gt=0)
    target_precision: float = Field(default=0.99, ge=0.5, lt=1.0)
    min_examples: int = Field(default=50, ge=10)
    signing_key: SecretRef | None = None  # default: derived from the at-rest keyring


class ApiSettings(Frozen):
    """The read-only track-and-trace HTTP API: one or more bearer tokens per organisation."""

    enabled: bool = False
    tokens: dict[Cvr, tuple[SecretRef, ...]] = Field(default_factory=dict)


class ConsoleSettings(Frozen):
    """The web console on the daemon's HTTP listener (postbud/console/): off unless enabled."""

    enabled: bool = False
    # Cookies are marked Secure whenever the request arrived over TLS; set this behind a TLS proxy.
    secure_cookies: bool = False
    idle_timeout_minutes: float = Field(default=30.0, gt=0)
    absolute_timeout_hours: float = Field(default=12.0, gt=0)
    # Sign-in throttling: this many failures within the window, per account or per address, lock it.
    max_failed_signins: int = Field(default=5, gt=0)
    throttle_window_minutes: float = Field(default=15.0, gt=0)
    page_size: int = Field(default=50, gt=0, le=500)
    # Trusted locations: how long the link mailed after a sign-in from a new network works (once).
    location_link_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    oidc: OidcSettings | None = None  # [console.oidc]: sign-in through an identity provider (core/oidc_settings.py)


class RecipientsSettings(Frozen):
    """The approved-recipients file (recipients, groups, key material per organisation)."""

    file: RelPath | None = None


class PostSettings(Frozen):
    """The physical post channel: a print-and-mail provider's REST API (OAuth2 client credentials)."""

    api_url: str  # e.g. https://api.provider.example (no trailing slash)
    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    organisation: str = Field(min_length=1)  # the provider's organisation id letters are filed under
    ca_file: RelPath | None = None  # None: the system trust store verifies the provider
    timeout_seconds: float = Field(default=30.0, gt=0)
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    # One attempt waits this long for posted/failed; still in progress: the letter is looked at again
    # after the usual back-off (found by its reference, never uploaded twice).
    poll_seconds: float = Field(default=30.0, gt=0)
    delivery_product: str = "cheap"

    @field_validator("api_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("api_url must start with https:// (letters never travel in clear)")
        return value.rstrip("/")


class DeliverySettings(Frozen):
    """The delivery stage: SMTP relay (TLS always), enabled channels, retries, approval invitations."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "implicit"] = "starttls"  # there is deliberately no plain mode
    smtp_ca_file: RelPath | None = None  # None: the system trust store
    smtp_username: str | None = None
    smtp_password: SecretRef | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_connections: int = Field(default=4, ge=1, le=64)  # kept open to the relay, one letter at a time each
    from_address: str = Field(default="postbud@localhost", pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    message_id_domain: str = Field(default="postbud.invalid", pattern=r"^[A-Za-z0-9.-]+$")
    channels: tuple[Literal["email", "webhook", "post"], ...] = ("email", "webhook")
    post: PostSettings | None = None  # [delivery.post]: needed when "post" is among the channels
    webhook_ca_file: RelPath | None = None
    webhook_timeout_seconds: float = Field(default=30.0, gt=0)  # per request (connect, send, answer)
    trust_store: RelPath | None = None  # S/MIME recipient certificates must chain to it when given
    batch_size: int = Field(default=50, gt=0)
    lease_seconds: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    key_warning_days: int = Field(default=30, ge=0)
    approval_base_url: str = "http://127.0.0.1:9464"
    invitation_valid_hours: float = Field(default=72.0, gt=0)
    # A recipient stuck on an onboarding step this long is reminded (with a renewed link), again
    # after as long again.
    onboarding_reminder_days: float = Field(default=2.0, gt=0)

    @field_validator("approval_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("approval_base_url must start with https:// (or http:// on localhost)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _post_configured(self) -> DeliverySettings:
        if "post" in self.channels and self.post is None:
            raise ValueError('channels names "post" but there is no [delivery.post] table (api_url, client_id, '
                             "client_secret, organisation)")
        return self


class LoggingSettings(Frozen):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class SandboxSettings(Frozen):
    """The built-in fake providers, for `make run` and demos; never enabled in production."""

    enabled: bool = False
    folder: RelPath = Path("var/sandbox")
    messages_per_cvr: int = Field(default=5, ge=0)
    seed: int = 0
    ports: dict[str, int] = Field(
        default_factory=lambda: {"ngdp": 18443, "eboks": 18444, "mitdk": 18445, "smtp": 18025, "post": 18446}
    )


class MailboxConfig(BaseModel):
    """One mailbox: `name`, the connector `type`, and the connector's own settings beside them."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str
    enabled: bool = True
    poll_interval_seconds: float | None = Field(default=None, gt=0)
    # When the provider may forget a message: once every delivery is confirmed, or once it is
    # committed. None: the connector's default (after_delivery; the drop folder: after_commit).
    acknowledge: Literal["after_delivery", "after_commit"] | None = None

    @property
    def connector_settings(self) -> dict[str, TomlValue]:
        """Every key besides the ones above: the connector's own settings, as TOML gave them."""
        return dict(self.model_extra or {})


DEFAULT_REMINDERS_HOURS = (24.0, 120.0)


class OrganisationConfig(Frozen):
    cvr: Cvr
    name: str
    default_route: tuple[str, ...] = ()
    administrators: tuple[str, ...] = ()
    # Who places held letters; reminders go to them (to the administrators when none are given).
    processors: tuple[str, ...] = ()
    retention_days: int = Field(default=90, gt=0)
    # A held letter's life: reminders while it waits, escalation at the decision deadline, a final
    # warning `final_warning_days` before retention purges it (postbud.deadlines).
    held_reminders_hours: tuple[Annotated[float, Field(gt=0)], ...] = DEFAULT_REMINDERS_HOURS
    decision_deadline_days: float = Field(default=7.0, gt=0)
    final_warning_days: float = Field(default=7.0, gt=0)
    notices_show_senders: bool = False  # senders' names in notices (a sender may be a person)
    # Onboarding: postbud may issue recipients an S/MIME certificate from the organisation's own CA
    # (PKCS#12 by mail, its passphrase shown once on the confirmation page); ca_crl, when given, is
    # checked for uploaded certificates this CA issued.
    issue_certificates: bool = False
    ca_cert: RelPath | None = None
    ca_key: RelPath | None = None
    ca_crl: RelPath | None = None
    issued_certificate_days: int = Field(default=365, gt=0, le=825)
    # Trusted locations: when on, the console and the API admit this organisation's people and tokens
    # only from these networks and those authorised at run time (postbud.locations).
    trusted_locations: bool = False
    trusted_networks: Networks = ()
    mailboxes: tuple[MailboxConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _reminders(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "escalate_held_after_hours" in data:
            # Before the schedule, one escalation after this many hours; it is the first reminder now.
            data.setdefault("held_reminders_hours", [data.pop("escalate_held_after_hours")])
        if "held_reminders_hours" not in data:
            # The default reminders that fall before a shorter deadline; given ones are checked below.
            deadline = data.get("decision_deadline_days", 7.0)
            if isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
                data["held_reminders_hours"] = [h for h in DEFAULT_REMINDERS_HOURS if h < deadline * 24]
        return data

    @model_validator(mode="after")
    def _schedule_in_order(self) -> OrganisationConfig:
        deadline_hours = self.decision_deadline_days * 24
        late = [h for h in self.held_reminders_hours if h >= deadline_hours]
        if late:
            raise ValueError(f"held_reminders_hours must come before the decision deadline "
                             f"({deadline_hours:g} h): {', '.join(f'{h:g}' for h in late)}")
        if self.final_warning_days >= self.retention_days:
            raise ValueError("final_warning_days must be shorter than retention_days")
        return self

    @model_validator(mode="after")
    def _issuing_ca(self) -> OrganisationConfig:
        if self.issue_certificates and (self.ca_cert is None or self.ca_key is None):
            raise ValueError("issue_certificates = true needs ca_cert and ca_key (the organisation's CA)")
        return self

    @model_validator(mode="after")
    def _unique_mailboxes(self) -> OrganisationConfig:
        names = [m.name for m in self.mailboxes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique within an organisation: {', '.join(dupes)}")
        return self


class Config(Frozen):
    """The whole configuration. `path` is the file it came from (None when built in code)."""

    service: ServiceSettings = section()
    database: DatabaseSettings = section()
    encryption: EncryptionSettings = section()
    http: HttpSettings = section()
    schedule: ScheduleSettings = section()
    collector: CollectorSettings = section()
    rules: RulesSettings = section()
    model: ModelSettings = section()
    api: ApiSettings = section()
    console: ConsoleSettings = section()
    recipients: RecipientsSettings = section()
    delivery: DeliverySettings = section()
    notices: NoticeSettings = section()
    logging: LoggingSettings = section()
    sandbox: SandboxSettings = section()
    organisations: tuple[OrganisationConfig, ...] = ()
    path: Path | None = Field(default=None, exclude=True)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique_cvrs(self) -> Config:
        cvrs = [o.cvr for o in self.organisations]
        dupes = sorted({c for c in cvrs if cvrs.count(c) > 1})
        if dupes:
            raise ValueError(f"each organisation is declared once; repeated cvr: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _api_tokens_name_organisations(self) -> Config:
        unknown = sorted(set(self.api.tokens) - {o.cvr for o in self.organisations})
        if unknown:
            raise ValueError(f"api tokens for organisations that are not configured: {', '.join(unknown)}")
        return self

    @property
    def database_url(self) -> str:
        """The database URL: $POSTBUD_DATABASE_URL wins; a relative SQLite path is the config's."""
        url = os.environ.get(ENV_DATABASE_URL) or self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str((self.base_dir / url[len(prefix):]).resolve())
        return url

    @property
    def console_url(self) -> str:
        return self.notices.console_url or self.delivery.approval_base_url

    def organisation(self, cvr: str) -> OrganisationConfig:
        for org in self.organisations:
            if org.cvr == cvr:
                return org
        raise KeyError(cvr)
