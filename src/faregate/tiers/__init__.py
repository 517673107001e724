"""Usage tiers: which tier an organization is in, and what the tier allows."""

UNLIMITED_TIER = 100  # set by an operator (and by the operator CLI); no rate limits
