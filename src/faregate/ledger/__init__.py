"""The double-entry ledger: accounts, immutable transfers, leases of credit, settlement.

Only this package writes ledger rows (accounts, transfers, leases, usage records)."""
