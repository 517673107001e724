"""Payment processors behind one protocol: the embedded sandbox (Stripe's test mode, offline)
and Stripe itself. Nothing here touches the ledger: billing/ turns outcomes into credit."""
