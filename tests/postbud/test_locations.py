"""Trusted locations, the rule: which networks admit whom, and every authorisation or removal audited."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from core.config import Config
from core.configfile import ConfigError
from core.storage.accounts import AuditEvent
from core.storage.db import Store
from postbud import locations
from postbud.peers import parse_address
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import ORG_A, ORG_B, store_for

TWO_ORGS = f'''trusted_locations = true
trusted_networks = ["192.0.2.0/24", "2001:db8:aa::/48"]
[[organisations]]
cvr = "{ORG_B}"
name = "Other ApS"
'''


@pytest.fixture
def world(make_config: MakeConfig) -> tuple[Config, Store]:
    config = make_config(extra_org=TWO_ORGS)
    return config, store_for(config)


def audited(store: Store) -> list[tuple[str, str, str | None, str | None, str]]:
    with store.read() as session:
        rows = session.exec(select(AuditEvent).where(col(AuditEvent.action).startswith("location"))
                            .order_by(col(AuditEvent.at))).all()
    return [(e.username, e.action, e.address, e.organisation_cvr, e.detail["network"]) for e in rows]


def test_a_link_binds_an_ipv4_address_exactly_and_an_ipv6_address_by_its_64() -> None:
    assert locations.network_of(parse_address("198.51.100.23")) == "198.51.100.23/32"  # type: ignore[arg-type]
    assert locations.network_of(parse_address("2001:db8:1:2:a:b:c:d")) == "2001:db8:1:2::/64"  # type: ignore[arg-type]


def test_configured_networks_admit_ipv4_and_ipv6_and_nothing_else(world: tuple[Config, Store]) -> None:
    config, store = world
    for inside in ("192.0.2.200", "2001:db8:aa:5::1", "::ffff:192.0.2.1"):
        assert locations.refused(store, config, [ORG_A], inside) == ()
    for outside in ("192.0.3.1", "2001:db8:ab::1", "127.0.0.1", None, "testclient"):
        assert locations.refused(store, config, [ORG_A], outside) == (ORG_A,)
    # an organisation without trusted locations admits everyone
    assert locations.refused(store, config, [ORG_B], "203.0.113.1") == ()


def test_a_user_of_several_organisations_needs_every_guarding_one_to_admit_the_network(
        make_config: MakeConfig) -> None:
    config = make_config(extra_org=TWO_ORGS.replace('name = "Other ApS"', 'name = "Other ApS"\ntrusted_locations = true'))
    store = store_for(config)
    locations.authorise(store, config, ORG_B, "203.0.113.0/24", actor="admin", address="192.0.2.9", via="console")
    # B admits 203.0.113.7, A does not: the account granted both is refused there, naming A
    assert locations.refused(store, config, [ORG_A, ORG_B], "203.0.113.7") == (ORG_A,)
    # A admits 192.0.2.9, B does not
    assert locations.refused(store, config, [ORG_A, ORG_B], "192.0.2.9") == (ORG_B,)
    locations.authorise(store, config, ORG_A, "203.0.113.7", actor="admin", address="192.0.2.9", via="cli")
    assert locations.refused(store, config, [ORG_A, ORG_B], "203.0.113.7") == ()


def test_authorising_and_removing_are_audited_and_take_effect(world: tuple[Config, Store]) -> None:
    config, store = world
    assert locations.authorise(store, config, ORG_A, "198.51.100.0/25 ", actor="ida", address="192.0.2.4", via="console")
    assert not locations.authorise(store, config, ORG_A, "198.51.100.0/25", actor="ida", address="192.0.2.4",
                                   via="console")  # already there: nothing new, nothing audited
    assert not locations.authorise(store, config, ORG_A, "192.0.2.0/24", actor="ida", address=None, via="cli")
    assert locations.refused(store, config, [ORG_A], "198.51.100.100") == ()
    assert [(a.network, a.source, a.added_by) for a in locations.authorised(store, config, [ORG_A])] == [
        ("192.0.2.0/24", "config", None), ("2001:db8:aa::/48", "config", None),
        ("198.51.100.0/25", "console", "ida")]

    locations.remove(store, config, ORG_A, "198.51.100.0/25", actor="bo", address="192.0.2.5", via="console")
    assert locations.refused(store, config, [ORG_A], "198.51.100.100") == (ORG_A,)
    assert audited(store) == [("ida", "location_authorised", "192.0.2.4", ORG_A, "198.51.100.0/25"),
                              ("bo", "location_removed", "192.0.2.5", ORG_A, "198.51.100.0/25")]


def test_what_cannot_be_done_says_why(world: tuple[Config, Store]) -> None:
    config, store = world
    with pytest.raises(locations.LocationError, match="config file"):
        locations.remove(store, config, ORG_A, "192.0.2.0/24", actor="bo", address=None, via="cli")
    with pytest.raises(locations.LocationError, match="not an authorised network"):
        locations.remove(store, config, ORG_A, "203.0.113.0/24", actor="bo", address=None, via="cli")
    with pytest.raises(locations.LocationError, match="not a network"):
        locations.authorise(store, config, ORG_A, "192.0.2.0/33", actor="bo", address=None, via="cli")
    with pytest.raises(locations.LocationError, match="no organisation"):
        locations.authorise(store, config, "11223344", "192.0.2.0/24", actor="bo", address=None, via="cli")
    assert audited(store) == []


def test_a_bad_network_in_the_config_is_refused_with_how_to_write_one(make_config: MakeConfig) -> None:
    with pytest.raises(ConfigError, match="not a network"):
        make_config(extra_org='trusted_networks = ["192.0.2.0/24", "office"]')
    with pytest.raises(ConfigError, match="not a network"):
        make_config(extra='trusted_proxies = ["10.0.0.0/40"]')  # lands in [http]
