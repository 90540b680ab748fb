"""The client's address as the HTTP listener sees it: the peer, or, when the peer is one of the configured
trusted proxies (`[http] trusted_proxies`), the nearest hop of X-Forwarded-For that is not a trusted proxy.
From anyone else X-Forwarded-For is ignored: a client cannot choose its own address by sending it."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import Request

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str | None) -> Address | None:
    """An IP address, IPv4-mapped IPv6 read as the IPv4 it carries; None when `text` is not one."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)
def parse_network(text: str) -> Network:
    """A configured or stored network (already validated when written); cached, as every request asks."""
    return ipaddress.ip_network(text, strict=False)


def within(address: Address, networks: Iterable[str]) -> bool:
    return any(address.version == net.version and address in net for net in map(parse_network, networks))


def resolve(peer: str | None, forwarded: Sequence[str], trusted_proxies: Sequence[str]) -> str | None:
    """The client's address from the peer and the X-Forwarded-For headers (in the order received)."""
    hop = parse_address(peer)
    if hop is None:
        return peer
    if not trusted_proxies or not within(hop, trusted_proxies):
        return str(hop)
    chain = [part.strip() for header in forwarded for part in header.split(",")]
    # Right to left: each trusted proxy vouches for the hop before it; the first one no trusted proxy
    # added is the client. A malformed entry ends the walk at the last hop we could vouch for.
    for entry in reversed(chain):
        candidate = parse_address(entry)
        if candidate is None:
            break
        hop = candidate
        if not within(hop, trusted_proxies):
            break
    return str(hop)


def client_address(request: Request, trusted_proxies: Sequence[str]) -> str | None:
    peer = request.client.host if request.client else None
    return resolve(peer, request.headers.getlist("x-forwarded-for"), trusted_proxies)
