"""The client's address: the TCP peer, or what a trusted reverse proxy says it forwarded.

``X-Forwarded-For`` is a header anyone can send, so it is read only when the peer is one of
``QUNYUN_TRUSTED_PROXIES`` (empty by default: never). The list is walked from the right, the end
our own proxies appended to, and the first address that is not a trusted proxy is the client.
``qunyun serve`` configures uvicorn's proxy handling with the same list, so applying this again
inside the app changes nothing there; it keeps the throttle and the audit trail right under any
other server (a test client, gunicorn, uvicorn with its loopback default).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

from qunyun.config import get_settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_LENGTH = 64  # the audit log's ip column


@lru_cache(maxsize=8)
def parse_networks(value: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` → networks (an address is a network of one)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip())


def _as_address(value: str) -> Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _trusted(value: str, networks: tuple[Network, ...]) -> bool:
    address = _as_address(value)
    return address is not None and any(address in network for network in networks)


def forwarded_client(peer: str, forwarded_for: list[str], networks: tuple[Network, ...]) -> str:
    """The client behind ``peer``: ``peer`` itself unless it is a trusted proxy, then the nearest
    untrusted hop of the forwarded chain (the leftmost one when every hop is trusted)."""
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            address = _as_address(hop)
            return str(address) if address is not None else hop
    return hops[0] if hops else peer


def client_address(connection: HTTPConnection | None) -> str | None:
    """The address of the client behind this request (None outside a request)."""
    if connection is None or connection.client is None:
        return None
    networks = parse_networks(get_settings().trusted_proxies)
    host = forwarded_client(connection.client.host, connection.headers.getlist("x-forwarded-for"), networks)
    return host[:MAX_LENGTH]


def throttle_source(address: str | None) -> str:
    """The unit the login throttle counts per source: an IPv4 address, or an IPv6 /64 (one
    subscriber usually holds a whole /64, so single v6 addresses are free to rotate)."""
    if not address:
        return "-"
    parsed = _as_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed) if parsed is not None else address[:MAX_LENGTH]
