"""The client's address: the peer, and X-Forwarded-For only from a configured trusted proxy."""

from __future__ import annotations

import pytest

from postbud.peers import parse_address, resolve

PROXY = ("10.0.0.0/24", "fd00::/64")


def test_without_trusted_proxies_a_forged_header_is_ignored() -> None:
    assert resolve("203.0.113.9", ["127.0.0.1"], ()) == "203.0.113.9"


def test_a_forged_header_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() -> None:
    assert resolve("203.0.113.9", ["127.0.0.1", "10.0.0.2"], PROXY) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_client_is_the_nearest_untrusted_hop() -> None:
    # the client wrote "127.0.0.1" itself; its real address is what our proxies appended after it
    assert resolve("10.0.0.1", ["127.0.0.1, 198.51.100.4, 10.0.0.5"], PROXY) == "198.51.100.4"
    assert resolve("10.0.0.1", ["127.0.0.1", "198.51.100.4"], PROXY) == "198.51.100.4"  # two headers
    assert resolve("fd00::1", ["2001:db8::7"], PROXY) == "2001:db8::7"


@pytest.mark.parametrize("header,expected", [
    ([], "10.0.0.1"),                         # no header: the proxy itself
    (["not-an-address"], "10.0.0.1"),         # malformed: nothing beyond the proxy is believed
    (["198.51.100.4, junk, 10.0.0.5"], "10.0.0.5"),
    (["10.0.0.8, 10.0.0.5"], "10.0.0.8"),     # only proxies: the farthest one
])
def test_a_malformed_or_short_chain_stops_at_the_last_hop_a_proxy_vouched_for(header: list[str], expected: str) -> None:
    assert resolve("10.0.0.1", header, PROXY) == expected


def test_addresses_are_normalised() -> None:
    assert str(parse_address("::ffff:192.0.2.7")) == "192.0.2.7"
    assert parse_address("testclient") is None and parse_address("") is None
    assert resolve("::ffff:203.0.113.9", [], ()) == "203.0.113.9"
