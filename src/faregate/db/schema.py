"""The tables, as SQLAlchemy Core metadata. Migrations are written by hand against this."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)



class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on both databases (SQLite stores no offset; we restore it)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: times are stored in UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


Money = sa.BigInteger
Now = UTCDateTime()

organizations = sa.Table(
    "organizations", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", Now, nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("created_at", Now, nullable=False),
)

# Every account is one side of transfers. A guarded account's posted debits plus what is held
# against it (leases) may never exceed its credits: the CHECK is the last line, conditional
# updates the first.
accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(80), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=True,
              index=True),
    sa.Column("guarded", sa.Boolean, nullable=False),
    sa.Column("credits_nano", Money, nullable=False, server_default="0"),
    sa.Column("debits_nano", Money, nullable=False, server_default="0"),
    sa.Column("held_nano", Money, nullable=False, server_default="0"),
    sa.CheckConstraint("credits_nano >= 0 AND debits_nano >= 0 AND held_nano >= 0",
                       name="nonnegative"),
    sa.CheckConstraint("NOT guarded OR debits_nano + held_nano <= credits_nano",
                       name="no_overdraft"),
)

transfers = sa.Table(
    "transfers", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("debit_account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
              index=True),
    sa.Column("credit_account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
              index=True),
    sa.Column("amount_nano", Money, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    # Usage is posted once per account per settlement batch; the batch's usage records carry
    # the same settlement id, and their charges add up to the transfer.
    sa.Column("settlement_id", sa.String(40), nullable=True, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("created_at", Now, nullable=False),
    sa.CheckConstraint("amount_nano > 0", name="positive"),
    sa.CheckConstraint("debit_account_id <> credit_account_id", name="two_sides"),
)

# A lease is credit a process holds against an account; requests reserve from it in memory.
leases = sa.Table(
    "leases", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("owner", sa.String(120), nullable=False),
    sa.Column("amount_nano", Money, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("closed_at_ms", sa.BigInteger, nullable=True),
    sa.CheckConstraint("amount_nano >= 0", name="nonnegative"),
    sa.CheckConstraint("status IN ('open', 'closed', 'voided')", name="status"),
)

usage_records = sa.Table(
    "usage_records", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("organization_id", sa.String(40), nullable=False),
    sa.Column("api_key_id", sa.String(40), nullable=True),
    sa.Column("account_id", sa.Integer, nullable=False),
    sa.Column("endpoint", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("upstream", sa.String(120), nullable=True),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("usage_source", sa.String(12), nullable=False),
    sa.Column("cost_nano", Money, nullable=False),
    sa.Column("charged_nano", Money, nullable=False),
    sa.Column("writeoff_nano", Money, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("streamed", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("settlement_id", sa.String(40), nullable=False),
    sa.Column("settled_at", Now, nullable=False),
    sa.CheckConstraint("cost_nano = charged_nano + writeoff_nano", name="cost_split"),
    sa.CheckConstraint("charged_nano >= 0 AND writeoff_nano >= 0", name="nonnegative"),
    sa.Index("ix_usage_records_org_settled", "organization_id", "settled_at"),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("redacted", sa.String(40), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("revoked_at", Now, nullable=True),
)

models = sa.Table(
    "models", metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # chat | embedding
    sa.Column("input_nano_per_1m", Money, nullable=False),
    sa.Column("cached_input_nano_per_1m", Money, nullable=False),
    sa.Column("output_nano_per_1m", Money, nullable=False),
    sa.Column("default_max_tokens", sa.Integer, nullable=False),
    sa.Column("max_output_tokens", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("owned_by", sa.String(120), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("updated_at", Now, nullable=False),
    sa.CheckConstraint("input_nano_per_1m >= 0 AND cached_input_nano_per_1m >= 0 "
                       "AND output_nano_per_1m >= 0", name="prices"),
    sa.CheckConstraint("default_max_tokens >= 1 AND max_output_tokens >= default_max_tokens",
                       name="limits"),
)

upstreams = sa.Table(
    "upstreams", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(120), nullable=False, unique=True),
    sa.Column("base_url", sa.String(1000), nullable=False),
    sa.Column("api_key_encrypted", sa.Text, nullable=True),
    sa.Column("api_key_env", sa.String(200), nullable=True),
    sa.Column("connect_timeout_ms", sa.Integer, nullable=False),
    sa.Column("read_timeout_ms", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", Now, nullable=False),
)

upstream_models = sa.Table(
    "upstream_models", metadata,
    sa.Column("upstream_id", sa.Integer, sa.ForeignKey("upstreams.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("model_id", sa.String(200), sa.ForeignKey("models.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("upstream_model", sa.String(200), nullable=False),
)
