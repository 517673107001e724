"""The operator's catalog writes: each one audited with before/after, each one moving the
catalog fingerprint so servers reload, and the snapshot pricing and resolving what they wrote."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.audit.trail import AuditEvent, list_events
from faregate.catalog import model_admin
from faregate.catalog.model_admin import ModelChange
from faregate.catalog.service import (
    BUILTIN_BASE_URL,
    ModelPrice,
    add_upstream,
    catalog_version,
    load_snapshot,
)
from faregate.db.schema import organizations
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.identity.users import create_user
from faregate.kit.crypto import Cipher

CIPHER = Cipher(b"test-encryption-key")
ADMIN = "operator:op_test"
PRICE = ModelPrice(2_000_000_000, 1_000_000_000, 8_000_000_000)


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with engine.begin() as conn:
        return list_events(conn, action=action)


def _version(engine: Engine) -> tuple[object, ...]:
    with engine.begin() as conn:
        return catalog_version(conn)


def _model(engine: Engine, model_id: str = "big", **kw: object) -> None:
    with engine.begin() as conn:
        model_admin.create_model(conn, model_id=model_id, price=PRICE, actor=ADMIN,
                                 ip="10.0.0.9", **kw)  # type: ignore[arg-type]
        add_upstream(conn, name=f"up-{model_id}", base_url=BUILTIN_BASE_URL,
                     model_map={model_id: "faregate-dev"}, api_key=None, api_key_env=None,
                     cipher=CIPHER)


def test_create_and_update_are_audited_with_before_and_after(engine: Engine) -> None:
    _model(engine, min_tier=1, visibility="hidden", context_window=8192)
    created = _events(engine, "model.created")
    assert len(created) == 1
    event = created[0]
    assert (event.actor, event.target, event.ip) == (ADMIN, "model:big", "10.0.0.9")
    assert event.detail is not None and event.detail["before"] is None
    assert event.detail["after"]["input_nano_per_1m"] == 2_000_000_000
    assert event.detail["after"]["min_tier"] == 1
    assert event.detail["after"]["visibility"] == "hidden"

    before = _version(engine)
    with engine.begin() as conn:
        info = model_admin.update_model(conn, "big", ModelChange(
            output_nano_per_1m=9_000_000_000, min_tier=0, clear_context_window=True),
            actor="cli:alice")
    assert (info.price.output_nano_per_1m, info.min_tier, info.context_window) == \
        (9_000_000_000, 0, None)
    assert _version(engine) != before
    updated = _events(engine, "model.updated")
    assert len(updated) == 1
    assert updated[0].actor == "cli:alice"
    assert updated[0].detail is not None
    assert updated[0].detail["before"] == {"output_nano_per_1m": 8_000_000_000, "min_tier": 1,
                                           "context_window": 8192}
    assert updated[0].detail["after"] == {"output_nano_per_1m": 9_000_000_000, "min_tier": 0,
                                          "context_window": None}
    # Nothing to change: nothing recorded.
    with engine.begin() as conn:
        model_admin.update_model(conn, "big", ModelChange(min_tier=0), actor=ADMIN)
    assert len(_events(engine, "model.updated")) == 1


def test_invalid_models_are_refused_and_leave_no_trace(engine: Engine) -> None:
    _model(engine)
    with engine.begin() as conn:
        with pytest.raises(Refused):
            model_admin.create_model(conn, model_id="big", actor=ADMIN)
        for bad in ({"model_id": "has space"}, {"model_id": "a/b"}, {"model_id": ""},
                    {"model_id": "x", "kind": "image"}, {"model_id": "x", "min_tier": -1},
                    {"model_id": "x", "min_tier": 101}, {"model_id": "x", "context_window": 0},
                    {"model_id": "x", "visibility": "secret"},
                    {"model_id": "x", "default_max_tokens": 10, "max_output_tokens": 5}):
            with pytest.raises(InvalidRequest):
                model_admin.create_model(conn, actor=ADMIN, **bad)
        with pytest.raises(InvalidRequest):
            model_admin.update_model(conn, "big", ModelChange(input_nano_per_1m=-1),
                                     actor=ADMIN)
        with pytest.raises(NotFound):
            model_admin.update_model(conn, "nope", ModelChange(min_tier=1), actor=ADMIN)
    assert len(_events(engine, "model.created")) == 1
    assert _events(engine, "model.updated") == []


def test_aliases_resolve_and_may_not_clash(engine: Engine) -> None:
    _model(engine)
    _model(engine, "small")
    before = _version(engine)
    with engine.begin() as conn:
        model_admin.add_alias(conn, "big-latest", "big", actor=ADMIN)
    assert _version(engine) != before
    with engine.begin() as conn:
        with pytest.raises(Refused, match="model id"):
            model_admin.add_alias(conn, "small", "big", actor=ADMIN)
        with pytest.raises(Refused, match="already an alias"):
            model_admin.add_alias(conn, "big-latest", "small", actor=ADMIN)
        with pytest.raises(Refused, match="already an alias"):
            model_admin.create_model(conn, model_id="big-latest", actor=ADMIN)
        with pytest.raises(NotFound):
            model_admin.add_alias(conn, "other", "nope", actor=ADMIN)
        snapshot = load_snapshot(conn, CIPHER, "http://builtin")
    assert snapshot.resolve("big-latest") == "big"
    assert snapshot.resolve("big") == "big"
    assert snapshot.resolve("unknown") == "unknown"
    added = _events(engine, "model.alias_added")
    assert [(e.target, e.detail) for e in added] == [
        ("model:big", {"before": None, "after": {"alias": "big-latest", "model_id": "big"}})]

    before = _version(engine)
    with engine.begin() as conn:
        model_admin.remove_alias(conn, "big-latest", actor=ADMIN)
        with pytest.raises(NotFound):
            model_admin.remove_alias(conn, "big-latest", actor=ADMIN)
        assert load_snapshot(conn, CIPHER, "http://builtin").aliases == {}
    assert _version(engine) != before
    removed = _events(engine, "model.alias_removed")
    assert removed[0].detail == {"before": {"alias": "big-latest", "model_id": "big"},
                                 "after": None}


def test_group_prices_in_the_snapshot(engine: Engine) -> None:
    _model(engine)
    _model(engine, "small")
    before = _version(engine)
    with engine.begin() as conn:
        group = model_admin.set_price_group(conn, "resellers", 800_000, actor=ADMIN,
                                            description="volume partners")
    assert (group.multiplier_ppm, group.description) == (800_000, "volume partners")
    assert _version(engine) != before
    before = _version(engine)
    with engine.begin() as conn:
        model_admin.set_model_multiplier(conn, "big", "resellers", 1_250_000, actor=ADMIN)
    assert _version(engine) != before
    with engine.begin() as conn:
        snap = load_snapshot(conn, CIPHER, "http://builtin")
    big, small = snap.models["big"], snap.models["small"]
    assert snap.price_for(big, "default") == PRICE
    assert snap.price_for(big, "resellers") == ModelPrice(2_500_000_000, 1_250_000_000,
                                                          10_000_000_000)
    assert snap.price_for(small, "resellers") == ModelPrice(1_600_000_000, 800_000_000,
                                                            6_400_000_000)
    assert snap.price_for(small, "deleted-group") == PRICE  # an unknown group pays list price

    with engine.begin() as conn:
        model_admin.set_price_group(conn, "resellers", 900_000, actor=ADMIN)
        model_admin.set_model_multiplier(conn, "big", "resellers", None, actor=ADMIN)
        with pytest.raises(NotFound):
            model_admin.set_model_multiplier(conn, "big", "resellers", None, actor=ADMIN)
        with pytest.raises(NotFound):
            model_admin.set_model_multiplier(conn, "big", "nope", 1, actor=ADMIN)
        with pytest.raises(InvalidRequest):
            model_admin.set_price_group(conn, "resellers", -1, actor=ADMIN)
        snap = load_snapshot(conn, CIPHER, "http://builtin")
        groups = {g.name: g for g in model_admin.list_price_groups(conn)}
    assert snap.price_for(snap.models["big"], "resellers") == ModelPrice(
        1_800_000_000, 900_000_000, 7_200_000_000)
    assert groups["resellers"].description == "volume partners"  # kept when not given
    assert groups["default"].multiplier_ppm == 1_000_000

    made, changed = _events(engine, "price_group.created"), _events(engine, "price_group.updated")
    assert made[0].target == "price_group:resellers"
    assert changed[0].detail is not None
    assert (changed[0].detail["before"], changed[0].detail["after"]) == (
        {"multiplier_ppm": 800_000}, {"multiplier_ppm": 900_000})
    set_events = _events(engine, "model.group_multiplier_set")
    assert set_events[0].detail == {"before": None, "after": {"group": "resellers",
                                                              "multiplier_ppm": 1_250_000}}
    cleared = _events(engine, "model.group_multiplier_cleared")
    assert cleared[0].detail == {"before": {"group": "resellers", "multiplier_ppm": 1_250_000},
                                 "after": None}


def test_an_organizations_price_group(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, "someone@example.com")
        model_admin.set_price_group(conn, "resellers", 800_000, actor=ADMIN)
        assert model_admin.set_org_price_group(conn, user.organization_id, "resellers",
                                               actor=ADMIN) == "resellers"
        with pytest.raises(NotFound):
            model_admin.set_org_price_group(conn, user.organization_id, "nope", actor=ADMIN)
        with pytest.raises(NotFound):
            model_admin.set_org_price_group(conn, "org_nope", "resellers", actor=ADMIN)
        stored = conn.execute(sa.select(organizations.c.price_group).where(
            organizations.c.id == user.organization_id)).scalar_one()
        assert stored == "resellers"
        model_admin.set_org_price_group(conn, user.organization_id, "default", actor=ADMIN)
        stored = conn.execute(sa.select(organizations.c.price_group).where(
            organizations.c.id == user.organization_id)).scalar_one()
        assert stored is None
    events = _events(engine, "organization.price_group_set")
    assert [(e.target, e.organization_id, e.detail) for e in reversed(events)] == [
        (user.organization_id, user.organization_id,
         {"before": {"price_group": "default"}, "after": {"price_group": "resellers"}}),
        (user.organization_id, user.organization_id,
         {"before": {"price_group": "resellers"}, "after": {"price_group": "default"}})]
