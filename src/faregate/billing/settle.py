"""What follows a successful payment, whichever path reported it first."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.billing import state
from faregate.billing.credit import credit_payment
from faregate.billing.receipts import issue_receipt
from faregate.billing.refunds import owed, settle_owed
from faregate.payments.processor import Charge
from faregate.tiers.service import raise_tier


def payment_succeeded(conn: sa.Connection, *, processor: str, charge: Charge,
                      organization_id: str, reinstate: bool) -> None:
    """Credit it (once), issue its receipt (once), repay what refunds or disputes left owed,
    restart the failure count, and lift a suspension when the policy allows and nothing is
    owed any more."""
    credit_payment(conn, processor=processor, charge=charge, organization_id=organization_id)
    raise_tier(conn, organization_id)  # the key cache sees a higher tier within 2 s
    issue_receipt(conn, processor=processor, charge=charge, organization_id=organization_id)
    settle_owed(conn, organization_id, actor=f"{processor}:payment")
    state.record_successful_charge(
        conn, organization_id, reinstate=reinstate and owed(conn, organization_id) == 0)
