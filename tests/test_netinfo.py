"""The client address and scheme behind load balancers: forwarded headers are believed only
from the addresses in FAREGATE_TRUSTED_PROXIES."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.kit.netinfo import client_ip, is_https


def _scope(peer: str, *headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    return {"client": (peer, 5555), "scheme": scheme,
            "headers": [(k.encode(), v.encode()) for k, v in headers]}


TRUSTED = ("10.0.0.0/8", "127.0.0.1")


@pytest.mark.parametrize(("scope", "trusted", "expected"), [
    # no trusted proxies: the peer, whatever the headers claim
    (_scope("203.0.113.5", ("x-forwarded-for", "1.2.3.4")), (), "203.0.113.5"),
    # a peer that is not trusted cannot set the client address
    (_scope("203.0.113.5", ("x-forwarded-for", "1.2.3.4")), TRUSTED, "203.0.113.5"),
    # trusted proxy: the right-most untrusted hop (the left part is whatever the client sent)
    (_scope("10.1.2.3", ("x-forwarded-for", "6.6.6.6, 198.51.100.7")), TRUSTED,
     "198.51.100.7"),
    (_scope("10.1.2.3", ("x-forwarded-for", "198.51.100.7, 10.9.9.9")), TRUSTED,
     "198.51.100.7"),
    (_scope("127.0.0.1", ("x-forwarded-for", "2001:db8::1")), TRUSTED, "2001:db8::1"),
    # trusted proxy without the header: the peer
    (_scope("10.1.2.3"), TRUSTED, "10.1.2.3"),
])
def test_client_ip(scope: dict[str, Any], trusted: tuple[str, ...], expected: str) -> None:
    assert client_ip(scope, trusted) == expected


def test_https_only_from_trusted_proxies() -> None:
    forwarded = ("x-forwarded-proto", "https")
    assert is_https(_scope("10.1.2.3", forwarded), TRUSTED)
    assert not is_https(_scope("203.0.113.5", forwarded), TRUSTED)
    assert not is_https(_scope("10.1.2.3", ("x-forwarded-proto", "http")), TRUSTED)
    assert is_https(_scope("203.0.113.5", scheme="https"), ())
