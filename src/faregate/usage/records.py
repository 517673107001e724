"""One request's usage record, as `GET /v1/faregate/requests/{id}` and the operator CLI show it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from faregate.db.schema import usage_records
from faregate.kit.money import nano_to_usd


def request_record(conn: sa.Connection, rid: str, org_id: str | None) -> dict[str, Any] | None:
    """The record of request `rid`, only within `org_id` unless it is None (operators, who
    also see the organization)."""
    q = sa.select(usage_records).where(usage_records.c.request_id == rid)
    if org_id is not None:
        q = q.where(usage_records.c.organization_id == org_id)
    row = conn.execute(q).first()
    if row is None:
        return None
    record = {
        "object": "faregate.request", "request_id": row.request_id, "status": row.status,
        "endpoint": row.endpoint, "model": row.model, "upstream": row.upstream,
        "api_key_id": row.api_key_id, "streamed": bool(row.streamed),
        "prompt_tokens": int(row.prompt_tokens), "cached_tokens": int(row.cached_tokens),
        "completion_tokens": int(row.completion_tokens), "usage_source": row.usage_source,
        "cost_nano_usd": int(row.cost_nano), "charged_nano_usd": int(row.charged_nano),
        "cost_usd": nano_to_usd(int(row.cost_nano)),
        "charged_usd": nano_to_usd(int(row.charged_nano)),
        "latency_ms": int(row.latency_ms),
        "settled_at": row.settled_at.isoformat() if row.settled_at else None,
    }
    if org_id is None:  # an operator's view: whose request it was
        record["organization_id"] = row.organization_id
    return record
