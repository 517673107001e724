"""The audit helper for operator actions: before/after reduced to what changed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from faregate.audit.changes import diff, operator_actor, record_change
from tests.operators.conftest import audit


def test_diff_keeps_only_what_changed() -> None:
    at = dt.datetime(2026, 11, 28, 1, 2, 3, tzinfo=dt.UTC)
    assert diff({"a": 1, "b": 2, "t": None}, {"a": 1, "b": 3, "t": at}) == (
        {"b": 2, "t": None}, {"b": 3, "t": "2026-11-28T01:02:03Z"})
    assert diff(None, {"a": [1, 2]}) == (None, {"a": [1, 2]})
    assert diff({"a": 1}, None) == ({"a": 1}, None)
    assert diff({"a": 1}, {"a": 1}) == ({}, {})


def test_record_change_writes_one_searchable_event(engine: Engine) -> None:
    with engine.begin() as conn:
        record_change(conn, actor=operator_actor("op_1"), action="model.price_changed",
                      target="gpt-4o", before={"input": 5, "output": 15},
                      after={"input": 5, "output": 10}, ip="10.0.0.9",
                      organization_id=None, detail={"reason": "new list price"})
    [event] = audit(engine, "model.price_changed")
    assert (event.actor, event.target, event.ip) == ("operator:op_1", "gpt-4o", "10.0.0.9")
    assert event.detail == {"reason": "new list price", "before": {"output": 15},
                            "after": {"output": 10}}
