"""Behind a TLS-terminating load balancer listed in FAREGATE_TRUSTED_PROXIES, cookies are
Secure and throttles count the client's address from X-Forwarded-For; without the listing, the
same headers are ignored."""

from __future__ import annotations

import httpx2

from tests.e2e.api_client import ApiClient
from tests.harness import Deployment

PASSWORD = "a long enough passphrase 5"


def _signin_failures(base: str, forwarded_for: str, n: int) -> list[int]:
    c = ApiClient(base)
    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
    return [c.post("/api/auth/signin", {"email": f"nobody{i}@example.com", "password": "x" * 12},
                   headers=headers).status_code for i in range(n)]


def test_trusted_proxy(sqlite_dep: Deployment) -> None:
    server = sqlite_dep.start_server(FAREGATE_TRUSTED_PROXIES='["127.0.0.1"]',
                                     FAREGATE_SIGN_IN_ATTEMPTS_PER_IP="3")
    base = server.base_url
    r = httpx2.get(f"{base}/api/auth/csrf", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in r.headers["set-cookie"].lower()
    r = httpx2.get(f"{base}/api/auth/csrf")
    assert "secure" not in r.headers["set-cookie"].lower()
    # Each client address behind the proxy has its own count.
    assert _signin_failures(base, "198.51.100.1", 4) == [401, 401, 401, 429]
    assert _signin_failures(base, "198.51.100.2", 1) == [401]


def test_untrusted_peer_cannot_claim_an_address(sqlite_dep: Deployment) -> None:
    server = sqlite_dep.start_server(FAREGATE_SIGN_IN_ATTEMPTS_PER_IP="3")
    base = server.base_url
    r = httpx2.get(f"{base}/api/auth/csrf", headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in r.headers["set-cookie"].lower()
    # A forged X-Forwarded-For does not give a fresh count: the peer is what counts.
    assert _signin_failures(base, "198.51.100.1", 3) == [401, 401, 401]
    assert _signin_failures(base, "198.51.100.9", 1) == [429]
