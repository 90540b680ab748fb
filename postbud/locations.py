"""Trusted locations: an organisation that switches them on (`trusted_locations = true`) admits its console
users and its API tokens only from networks it has authorised — in the config file (`trusted_networks`)
or at run time, by a user's mailed link (`postbud.location_links`) or by an administrator (console,
`postbud locations add`). Every authorisation and removal goes into the audit trail with who, when and
from where.

A user granted several organisations is admitted only from a network every one of them that has trusted
locations on has authorised: the account has one profile across all of them, so the strictest rule
applies to the whole session (a link then authorises the network for each that lacks it).

A link authorises the network it was requested from: an IPv4 address exactly (a /32; a /24 would admit
255 neighbours, often another customer of the same provider), an IPv6 address's /64 (one site's
subnet, within which privacy addresses change). Administrators may authorise wider networks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.config import Config
from core.storage.accounts import TrustedNetwork
from core.storage.db import Store
from postbud.console import audit
from postbud.peers import Address, parse_address, within

IPV4_PREFIX = 32
IPV6_PREFIX = 64


class LocationError(ValueError):
    """A network cannot be authorised or removed as asked; the text says why."""


@dataclass(frozen=True)
class Authorised:
    """One authorised network of an organisation, as the console and `locations list` show it."""

    organisation: str
    network: str
    source: str  # config, link, console or cli
    added_by: str | None = None
    added_from: str | None = None
    added_at: datetime | None = None


def network_of(address: Address) -> str:
    """The network a link requested from `address` authorises (see the module docstring)."""
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def normalise(network: str) -> str:
    try:
        return str(ipaddress.ip_network(network.strip(), strict=False))
    except ValueError:
        raise LocationError(f"{network!r} is not a network: write an address or CIDR such as 192.0.2.0/24 "
                            "or 2001:db8::/48") from None


def guarded(config: Config, organisations: Iterable[str]) -> list[str]:
    """Those of `organisations` that have trusted locations switched on."""
    wanted = set(organisations)
    return [o.cvr for o in config.organisations if o.cvr in wanted and o.trusted_locations]


def refused(store: Store, config: Config, organisations: Collection[str], address: str | None) -> tuple[str, ...]:
    """The organisations among `organisations` whose trusted locations do not admit `address`
    (empty: admitted). An address that is not an IP address is admitted by none of them."""
    checked = guarded(config, organisations)
    if not checked:
        return ()
    ip = parse_address(address)
    if ip is None:
        return tuple(checked)
    missing = [cvr for cvr in checked if not within(ip, config.organisation(cvr).trusted_networks)]
    if not missing:
        return ()
    with store.read() as session:
        rows = session.exec(select(TrustedNetwork.organisation_cvr, TrustedNetwork.network)
                            .where(col(TrustedNetwork.organisation_cvr).in_(missing))).all()
    allowed = {cvr for cvr, network in rows if within(ip, [network])}
    return tuple(cvr for cvr in missing if cvr not in allowed)


def authorised(store: Store, config: Config, organisations: Iterable[str]) -> list[Authorised]:
    """Every authorised network of `organisations`: the configured ones first, then the stored ones."""
    wanted = list(dict.fromkeys(organisations))
    found = [Authorised(cvr, network, "config") for cvr in wanted for org in config.organisations
             if org.cvr == cvr for network in org.trusted_networks]
    with store.read() as session:
        rows = session.exec(select(TrustedNetwork).where(col(TrustedNetwork.organisation_cvr).in_(wanted))
                            .order_by(col(TrustedNetwork.organisation_cvr), col(TrustedNetwork.added_at))).all()
    found += [Authorised(r.organisation_cvr, r.network, r.via, r.added_by, r.added_from, r.added_at) for r in rows]
    return found


def authorise(store: Store, config: Config, organisation: str, network: str, *, actor: str,
              address: str | None, via: str) -> bool:
    """Authorise `network` for `organisation` (audited); False when it was authorised already."""
    chosen = normalise(network)
    if organisation not in {o.cvr for o in config.organisations}:
        raise LocationError(f"no organisation {organisation} is configured")
    if chosen in config.organisation(organisation).trusted_networks:
        return False
    try:
        with store.transaction() as session:
            exists = session.exec(select(TrustedNetwork).where(TrustedNetwork.organisation_cvr == organisation,
                                                               TrustedNetwork.network == chosen)).first()
            if exists is not None:
                return False
            session.add(TrustedNetwork(organisation_cvr=organisation, network=chosen, via=via, added_by=actor[:64],
                                       added_from=(address or "")[:64] or None))
            audit.record(session, actor, "location_authorised", address=address, organisation=organisation,
                         detail={"network": chosen, "via": via})
    except IntegrityError:
        return False  # authorised at the same moment by someone else: the row and its audit are theirs
    return True


def remove(store: Store, config: Config, organisation: str, network: str, *, actor: str,
           address: str | None, via: str) -> None:
    """Withdraw a network authorised at run time (audited). Sessions from it end at their next request."""
    chosen = normalise(network)
    if organisation in {o.cvr for o in config.organisations} and \
            chosen in config.organisation(organisation).trusted_networks:
        raise LocationError(f"{chosen} is authorised in the config file (trusted_networks); remove it there")
    with store.transaction() as session:
        row = session.exec(select(TrustedNetwork).where(TrustedNetwork.organisation_cvr == organisation,
                                                        TrustedNetwork.network == chosen)).first()
        if row is None:
            raise LocationError(f"{chosen} is not an authorised network of {organisation}")
        session.delete(row)
        audit.record(session, actor, "location_removed", address=address, organisation=organisation,
                     detail={"network": chosen, "via": via, "added_by": row.added_by, "added_via": row.via})
