"""The client's address and scheme, trusting forwarded headers only from listed proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def client_ip(scope: Mapping[str, Any], trusted: tuple[str, ...]) -> str:
    """The peer address; behind trusted proxies, the right-most X-Forwarded-For entry that is
    not itself a trusted proxy (the left part of the header is whatever the client sent)."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    networks = parse_networks(trusted)
    if not networks or not _trusted(peer, networks):
        return str(peer)
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded:
        return str(peer)
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop[:64]
    return hops[0][:64] if hops else str(peer)


def is_https(scope: Mapping[str, Any], trusted: tuple[str, ...]) -> bool:
    """True when the client reached us over TLS (directly, or at a trusted proxy)."""
    if scope.get("scheme") == "https":
        return True
    client = scope.get("client")
    networks = parse_networks(trusted)
    if client and networks and _trusted(client[0], networks):
        proto = _header(scope, b"x-forwarded-proto")
        return proto is not None and proto.split(",")[0].strip().lower() == "https"
    return False
