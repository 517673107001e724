"""The append-only audit trail of security-relevant, billing and operator events."""
