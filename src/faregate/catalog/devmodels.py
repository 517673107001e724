"""Registers the built-in development models so the Quickstart works with no provider."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.catalog.service import (
    BUILTIN_BASE_URL,
    ModelPrice,
    add_upstream,
    list_upstreams,
    set_price,
)
from faregate.db.schema import models
from faregate.kit.crypto import Cipher

DEV_CHAT = "faregate-dev"
DEV_EMBED = "faregate-dev-embed"
# The "stronger" development model: open from usage tier 1, i.e. after the first top-up (as
# OpenAI opens its larger models to paying organizations).
DEV_PRO = "faregate-dev-pro"
DEV_PRO_MIN_TIER = 1
# Every process of `faregate serve --workers N` runs this at start: on PostgreSQL they take
# turns on this advisory lock (SQLite's write transactions already take turns), so the second
# sees what the first added instead of failing on "already exists".
DEV_MODELS_LOCK = 0x46470001


def ensure_dev_models(conn: sa.Connection, cipher: Cipher) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(DEV_MODELS_LOCK)))
    builtin = [u for u in list_upstreams(conn) if u.base_url == BUILTIN_BASE_URL]
    if not any(DEV_PRO in u.models or u.name == "builtin-dev-pro" for u in builtin):
        add_upstream(conn, name="builtin-dev-pro", base_url=BUILTIN_BASE_URL,
                     model_map={DEV_PRO: DEV_PRO}, api_key=None, api_key_env=None,
                     cipher=cipher)
        set_price(conn, DEV_PRO, ModelPrice(2_500_000_000, 1_250_000_000, 10_000_000_000))
        conn.execute(models.update().where(models.c.id == DEV_PRO)
                     .values(min_tier=DEV_PRO_MIN_TIER))
    if builtin:
        return
    add_upstream(conn, name="builtin-dev", base_url=BUILTIN_BASE_URL,
                 model_map={DEV_CHAT: DEV_CHAT}, api_key=None, api_key_env=None, cipher=cipher)
    add_upstream(conn, name="builtin-dev-embed", base_url=BUILTIN_BASE_URL,
                 model_map={DEV_EMBED: DEV_EMBED}, api_key=None, api_key_env=None,
                 cipher=cipher, kind="embedding")
    # Priced like a small hosted model, so metering is visible: $0.50 / $1.50 per 1M tokens.
    set_price(conn, DEV_CHAT, ModelPrice(500_000_000, 250_000_000, 1_500_000_000))
    set_price(conn, DEV_EMBED, ModelPrice(20_000_000, 20_000_000, 0))
