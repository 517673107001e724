"""The processor customer of each organization, created on first need."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.db.runner import Database
from faregate.db.schema import billing_customers
from faregate.payments.processor import PaymentProcessor


def _find(conn: sa.Connection, processor: str, organization_id: str) -> str | None:
    found = conn.execute(sa.select(billing_customers.c.customer_id).where(
        billing_customers.c.organization_id == organization_id,
        billing_customers.c.processor == processor)).scalar()
    return str(found) if found is not None else None


async def ensure_customer(db: Database, processor: PaymentProcessor, organization_id: str,
                          email: str | None) -> str:
    found = await db.run(_find, processor.name, organization_id)
    if found is not None:
        return found
    customer_id = await processor.create_customer(organization_id=organization_id, email=email)

    def store(conn: sa.Connection) -> str:
        try:
            with conn.begin_nested():
                conn.execute(billing_customers.insert().values(
                    organization_id=organization_id, processor=processor.name,
                    customer_id=customer_id, created_at=dt.datetime.now(dt.UTC)))
        except IntegrityError:  # another request made one first; ours stays unused
            other = _find(conn, processor.name, organization_id)
            assert other is not None
            return other
        return customer_id
    return await db.run(store)
