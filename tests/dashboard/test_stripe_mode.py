"""In `stripe` mode the billing page loads Stripe.js from Stripe and its Content-Security-Policy
allows Stripe's hosts (and only there); in sandbox mode no Stripe host appears anywhere. Stripe
itself cannot be reached from the tests: this checks what the server sends."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.api_client import verified_user
from tests.harness import deployment

STRIPE_ENV = {"FAREGATE_PAYMENTS_PROCESSOR": "stripe",
              "FAREGATE_STRIPE_SECRET_KEY": "sk_test_faregate_tests",
              "FAREGATE_STRIPE_WEBHOOK_SECRET": "whsec_faregate_tests",
              "FAREGATE_STRIPE_PUBLISHABLE_KEY": "pk_test_faregate_tests"}


def test_stripe_js_and_its_hosts_only_in_stripe_mode(tmp_path: Path) -> None:
    with deployment(tmp_path / "stripe") as dep:
        server = dep.start_server(**STRIPE_ENV)
        user = verified_user(dep, server.base_url)
        config = user.get("/api/billing/config").json()
        assert config["processor"] == "stripe"
        assert config["publishable_key"] == "pk_test_faregate_tests"
        assert config["tokenize_url"] is None  # card data never reaches Faregate
        billing = user.http.get("/billing")
        csp = billing.headers["content-security-policy"]
        assert "script-src 'self' https://js.stripe.com" in csp
        assert "frame-src https://js.stripe.com https://hooks.stripe.com" in csp
        assert "connect-src 'self' https://api.stripe.com" in csp
        assert "'unsafe-inline'" not in csp
        assert '<script src="https://js.stripe.com/v3/" defer></script>' in billing.text
        assert 'id="stripe-card"' in billing.text and 'id="card-number"' not in billing.text
        keys = user.http.get("/keys")  # other pages do not load Stripe.js
        assert "js.stripe.com/v3" not in keys.text
        user.close()
    with deployment(tmp_path / "sandbox") as dep:
        server = dep.start_server()
        user = verified_user(dep, server.base_url)
        billing = user.http.get("/billing")
        assert "stripe.com" not in billing.headers["content-security-policy"]
        assert "stripe.com" not in billing.text and 'id="card-number"' in billing.text
        user.close()
