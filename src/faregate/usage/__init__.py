"""Usage reporting: rollups of the usage records, reports read from them, budgets and alerts."""
