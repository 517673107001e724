"""API keys: issued once, stored only as an HMAC, revocable."""
