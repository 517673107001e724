"""Billing: payment methods, top-ups, credit from payments (exactly once), auto-recharge,
charge-failure suspension. Uses payments/ for the processor and ledger/ for the money."""
