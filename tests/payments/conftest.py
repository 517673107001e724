"""A migrated database (SQLite, or PostgreSQL) behind the sandbox processor, and helpers."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.payments.processor import BillingDetails
from faregate.payments.sandbox import SandboxProcessor, tokenize

WEBHOOK_SECRET = b"whsec_sandbox_tests"
BILLING = BillingDetails(name="Ada Lovelace", line1="1 Main St", city="Springfield",
                         state="IL", postal_code="62701", country="US")
EXP_YEAR = 2034


def cvc_for(number: str) -> str:
    return "7391" if number.startswith(("34", "37")) else "739"


@pytest.fixture
def db_threads() -> int:
    """The sandbox processor's tests run many calls at once."""
    return 8


@pytest.fixture
def processor(db: Database) -> SandboxProcessor:
    return SandboxProcessor(db, webhook_secret=WEBHOOK_SECRET)


def new_method(engine: Engine, number: str, *, postal_code: str = "62701") -> str:
    """Tokenize a test card (as the browser would) and return its pm_ id."""
    with engine.begin() as conn:
        return tokenize(conn, number, 12, EXP_YEAR, cvc_for(number), postal_code, BILLING)
