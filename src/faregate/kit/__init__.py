"""Domain-free helpers: money, ids, crypto, clock."""
