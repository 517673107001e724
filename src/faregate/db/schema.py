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
    # Request logging is on for this organization until then (set by an operator; NULL: off).
    sa.Column("request_logging_until", Now, nullable=True),
    # Usage tier (tiers/): `tier` is the automatic one (raised by payments and age, never
    # lowered); `tier_override`, set by an operator (or the operator CLI: unlimited), wins.
    sa.Column("tier", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tier_override", sa.Integer, nullable=True),
    # The price group (price_groups.name); NULL: "default".
    sa.Column("price_group", sa.String(40), nullable=True),
    # Deactivated by an operator: /v1 answers 401 account_deactivated until reactivated.
    sa.Column("deactivated_at", Now, nullable=True),
    sa.Column("deactivated_reason", sa.String(500), nullable=True),
)

# `organization_id` is the user's personal organization; memberships list every organization a
# user belongs to. A user made by the operator CLI has no password until they reset it.
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("password_changed_at", Now, nullable=True),
    sa.Column("email_verified_at", Now, nullable=True),
    # The verified phone number, as an HMAC (to count accounts per number) and a masked form
    # to show; the number itself is not kept.
    sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
    sa.Column("phone_masked", sa.String(32), nullable=True),
    sa.Column("phone_verified_at", Now, nullable=True),
    sa.Column("locale", sa.String(16), nullable=True),
    # Deactivated by an operator: no sign-in, and the keys they created answer 401.
    sa.Column("deactivated_at", Now, nullable=True),
    sa.Column("deactivated_reason", sa.String(500), nullable=True),
)

memberships = sa.Table(
    "memberships", metadata,
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"),
              primary_key=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), primary_key=True, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.CheckConstraint("role IN ('owner', 'member')", name="role"),
)

invitations = sa.Table(
    "invitations", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("invited_by", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=False),
    sa.Column("accepted_at", Now, nullable=True),
    sa.Column("revoked_at", Now, nullable=True),
    sa.CheckConstraint("role IN ('owner', 'member')", name="role"),
)

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("archived_at", Now, nullable=True),
    # A monthly (UTC calendar) budget with a hard stop, and the percentages of it at which the
    # owners are emailed (comma-separated; NULL means the default 50,80,100).
    sa.Column("monthly_budget_nano", Money, nullable=True),
    sa.Column("budget_alert_pcts", sa.String(60), nullable=True),
    sa.CheckConstraint("monthly_budget_nano IS NULL OR monthly_budget_nano > 0",
                       name="budget_positive"),
)

# Budget alert emails sent: once per project, period and threshold.
budget_alerts = sa.Table(
    "budget_alerts", metadata,
    sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("period_start", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("threshold_pct", sa.Integer, primary_key=True),
    sa.Column("spent_nano", Money, nullable=False),
    sa.Column("sent_at", Now, nullable=False),
)

# Browser sessions. The cookie carries a random token; only its hash is stored.
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=False),
    sa.Column("last_seen_at", Now, nullable=False),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(300), nullable=True),
    sa.Column("revoked_at", Now, nullable=True),
)

# Single-use links sent by email (verify the address, reset the password); only hashes stored.
email_tokens = sa.Table(
    "email_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=False),
    sa.Column("used_at", Now, nullable=True),
    sa.CheckConstraint("purpose IN ('verify', 'reset')", name="purpose"),
)

# SMS codes: the code is kept only as an HMAC with the server's pepper.
phone_codes = sa.Table(
    "phone_codes", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("phone_hash", sa.String(64), nullable=False, index=True),
    sa.Column("phone_masked", sa.String(32), nullable=False),
    sa.Column("code_hmac", sa.String(64), nullable=False),
    sa.Column("ip", sa.String(64), nullable=True, index=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("verified_at", Now, nullable=True),
    sa.Column("superseded_at", Now, nullable=True),
)

# The append-only audit trail of security-relevant (later: billing and operator) events.
audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("organization_id", sa.String(40), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Index("ix_audit_events_org_created", "organization_id", "created_at"),
    sa.Index("ix_audit_events_actor_created", "actor", "created_at"),
)

# Attempts counted for throttling (sign-in, sign-up, resets, codes), shared by every process.
# `subject` is a hash of what is counted (an email, an IP address), never the value itself.
throttle_events = sa.Table(
    "throttle_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("scope", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_throttle_events_lookup", "scope", "subject", "at_ms"),
    sa.Index("ix_throttle_events_at_ms", "at_ms"),
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
    sa.Column("project_id", sa.String(40), nullable=True),
    sa.CheckConstraint("cost_nano = charged_nano + writeoff_nano", name="cost_split"),
    sa.CheckConstraint("charged_nano >= 0 AND writeoff_nano >= 0", name="nonnegative"),
    sa.Index("ix_usage_records_org_settled", "organization_id", "settled_at"),
)

# Usage summed per bucket (1m, 1h, 1d; UTC, by settlement time) x organization x project x key x
# model x endpoint, maintained by the worker from the usage records past its watermark. Reports
# read only these. "" stands for no project / no key (a primary key cannot hold NULL).
usage_rollups = sa.Table(
    "usage_rollups", metadata,
    sa.Column("width", sa.String(2), primary_key=True),  # 1m | 1h | 1d
    sa.Column("organization_id", sa.String(40), primary_key=True),
    sa.Column("bucket_start", sa.BigInteger, primary_key=True),  # POSIX seconds
    sa.Column("project_id", sa.String(40), primary_key=True),
    sa.Column("api_key_id", sa.String(40), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("endpoint", sa.String(40), primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("failed_requests", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_nano", Money, nullable=False),
    sa.Column("charged_nano", Money, nullable=False),
    sa.Column("writeoff_nano", Money, nullable=False),
    sa.CheckConstraint("width IN ('1m', '1h', '1d')", name="width"),
)

# How far the rollup worker has read the usage records (every id up to last_id is rolled up).
rollup_state = sa.Table(
    "rollup_state", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Now, nullable=False),
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
    sa.Column("project_id", sa.String(40), sa.ForeignKey("projects.id"), nullable=True,
              index=True),
    sa.Column("kind", sa.String(16), nullable=False, server_default="project"),
    # all | restricted (to `scopes`, comma-separated endpoint groups) | read_only
    sa.Column("permissions", sa.String(16), nullable=False, server_default="all"),
    sa.Column("scopes", sa.String(200), nullable=True),
    sa.Column("expires_at", Now, nullable=True),
    sa.Column("spend_limit_nano", Money, nullable=True),
    sa.Column("spend_limit_period", sa.String(8), nullable=True),
    sa.Column("last_used_at", Now, nullable=True),
    # Per-key rate limits below the organization's tier (NULL: the tier's per-key default).
    sa.Column("rpm_limit", sa.Integer, nullable=True),
    sa.Column("tpm_limit", sa.BigInteger, nullable=True),
    sa.CheckConstraint("kind IN ('project', 'admin', 'service')", name="kind"),
    sa.CheckConstraint("permissions IN ('all', 'restricted', 'read_only')", name="permissions"),
    sa.CheckConstraint("spend_limit_nano IS NULL OR (spend_limit_nano > 0 AND "
                       "spend_limit_period IN ('day', 'week', 'month'))", name="spend_limit"),
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
    # public: listed and callable; hidden: callable by name, not listed in /v1/models.
    sa.Column("visibility", sa.String(16), nullable=False, server_default="public"),
    sa.Column("context_window", sa.Integer, nullable=True),  # tokens, prompt + output
    sa.Column("min_tier", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("visibility IN ('public', 'hidden')", name="visibility"),
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
    # Routing: the lowest priority number is tried first; within a priority, by weight.
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("weight", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", Now, nullable=True),  # any change (the catalog's fingerprint)
    sa.CheckConstraint("weight >= 1", name="weight"),
)

upstream_models = sa.Table(
    "upstream_models", metadata,
    sa.Column("upstream_id", sa.Integer, sa.ForeignKey("upstreams.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("model_id", sa.String(200), sa.ForeignKey("models.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("upstream_model", sa.String(200), nullable=False),
)

# Another public name for a model (e.g. "gpt-4o" for "gpt-4o-2024-08-06").
model_aliases = sa.Table(
    "model_aliases", metadata,
    sa.Column("alias", sa.String(200), primary_key=True),
    sa.Column("model_id", sa.String(200), sa.ForeignKey("models.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("created_at", Now, nullable=False),
)

# Price groups: an organization in a group pays the model's prices times the group's multiplier
# (parts per million: 1_000_000 = x1), or the model's own multiplier for the group when set.
price_groups = sa.Table(
    "price_groups", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("multiplier_ppm", sa.BigInteger, nullable=False),
    sa.Column("description", sa.String(300), nullable=True),
    sa.Column("updated_at", Now, nullable=False),
    sa.CheckConstraint("multiplier_ppm >= 0", name="multiplier"),
)

model_group_multipliers = sa.Table(
    "model_group_multipliers", metadata,
    sa.Column("model_id", sa.String(200), sa.ForeignKey("models.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("group_name", sa.String(40), sa.ForeignKey("price_groups.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("multiplier_ppm", sa.BigInteger, nullable=False),
    sa.CheckConstraint("multiplier_ppm >= 0", name="multiplier"),
)

# Each server process's figures per upstream (written every few seconds): the console sums them.
upstream_stats = sa.Table(
    "upstream_stats", metadata,
    sa.Column("instance_id", sa.String(40), primary_key=True),
    sa.Column("upstream_id", sa.Integer, sa.ForeignKey("upstreams.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("failovers", sa.BigInteger, nullable=False),
    sa.Column("latency_ms_sum", sa.BigInteger, nullable=False),
    sa.Column("latency_count", sa.BigInteger, nullable=False),
    sa.Column("breaker_state", sa.String(12), nullable=False),  # closed | open | half_open
    sa.Column("breaker_open_until", Now, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("last_error_at", Now, nullable=True),
    sa.Column("health_ok", sa.Boolean, nullable=True),
    sa.Column("health_checked_at", Now, nullable=True),
    sa.Column("updated_at", Now, nullable=False),
)

# Usage tiers like OpenAI's: an organization reaches a tier once it has paid `min_paid_nano` in
# total and is `min_age_days` old (NULL min_paid: set by an operator only). NULL limits: none.
usage_tiers = sa.Table(
    "usage_tiers", metadata,
    sa.Column("tier", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("min_paid_nano", Money, nullable=True),
    sa.Column("min_age_days", sa.Integer, nullable=False),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.BigInteger, nullable=True),
    sa.Column("key_rpm", sa.Integer, nullable=True),
    sa.Column("key_tpm", sa.BigInteger, nullable=True),
    sa.Column("updated_at", Now, nullable=False),
)

# Notes operators (support included) leave on a user or an organization; append-only.
support_notes = sa.Table(
    "support_notes", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("target", sa.String(200), nullable=False, index=True),  # user:ID | org:ID
    sa.Column("organization_id", sa.String(40), nullable=True, index=True),
    sa.Column("operator_id", sa.String(40), sa.ForeignKey("operators.id"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", Now, nullable=False),
)

# --- Payments and billing ---------------------------------------------------------------------

# The sandbox processor's own state: it plays Stripe's test mode, so it keeps customers, payment
# methods and payments the way Stripe would (never a card number or CVC: a tokenized method
# records the brand, last 4, expiry, fingerprint and the test card's scripted behaviour).
sandbox_customers = sa.Table(
    "sandbox_customers", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("reference", sa.String(80), nullable=True),
    sa.Column("created_at", Now, nullable=False),
)

sandbox_payment_methods = sa.Table(
    "sandbox_payment_methods", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(40), sa.ForeignKey("sandbox_customers.id"),
              nullable=True, index=True),
    sa.Column("brand", sa.String(20), nullable=False),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("exp_month", sa.Integer, nullable=False),
    sa.Column("exp_year", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("country", sa.String(2), nullable=True),
    sa.Column("behavior", sa.String(40), nullable=False),
    sa.Column("billing", sa.Text, nullable=True),  # JSON
    sa.Column("created_at", Now, nullable=False),
    sa.Column("detached_at", Now, nullable=True),
)

sandbox_payments = sa.Table(
    "sandbox_payments", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(40), nullable=True),
    sa.Column("method_id", sa.String(40), nullable=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("capture_method", sa.String(10), nullable=False),
    sa.Column("off_session", sa.Boolean, nullable=False),
    sa.Column("decline_code", sa.String(40), nullable=True),
    sa.Column("message", sa.String(300), nullable=True),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("created_at", Now, nullable=False),
)

# Faregate's side. The processor customer of each organization.
billing_customers = sa.Table(
    "billing_customers", metadata,
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"),
              primary_key=True),
    sa.Column("processor", sa.String(16), primary_key=True),
    sa.Column("customer_id", sa.String(80), nullable=False, unique=True),
    sa.Column("created_at", Now, nullable=False),
)

payment_methods = sa.Table(
    "payment_methods", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("processor", sa.String(16), nullable=False),
    sa.Column("method_id", sa.String(80), nullable=False, unique=True),
    sa.Column("brand", sa.String(20), nullable=False),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("exp_month", sa.Integer, nullable=False),
    sa.Column("exp_year", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("billing_country", sa.String(2), nullable=True),
    sa.Column("billing_postal_code", sa.String(20), nullable=True),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("created_by", sa.String(40), nullable=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("removed_at", Now, nullable=True),
)

# Every charge attempt is written before the processor is called; its id is the processor's
# idempotency key, so a crash and retry cannot charge twice.
charge_attempts = sa.Table(
    "charge_attempts", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("processor", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # topup | auto_recharge | verification
    sa.Column("payment_method_id", sa.String(40), nullable=True),
    sa.Column("amount_nano", Money, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("payment_id", sa.String(80), nullable=True, unique=True),
    sa.Column("decline_code", sa.String(40), nullable=True),
    sa.Column("message", sa.String(300), nullable=True),
    # The client's Idempotency-Key, per organization, and a hash of the request it came with.
    sa.Column("client_key", sa.String(200), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("created_by", sa.String(40), nullable=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("updated_at", Now, nullable=False),
    sa.Column("credited_at", Now, nullable=True),
    sa.UniqueConstraint("organization_id", "client_key", name="uq_charge_attempts_client_key"),
    sa.CheckConstraint("amount_nano > 0 AND amount_minor > 0", name="positive"),
    sa.Index("ix_charge_attempts_status", "status", "created_at"),
)

# Per organization: consecutive failed charges, suspension, auto-recharge settings.
billing_states = sa.Table(
    "billing_states", metadata,
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"),
              primary_key=True),
    sa.Column("failed_charges", sa.Integer, nullable=False, server_default="0"),
    sa.Column("suspended_at", Now, nullable=True),
    sa.Column("suspended_reason", sa.String(300), nullable=True),
    sa.Column("auto_recharge", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("auto_recharge_threshold_nano", Money, nullable=True),
    sa.Column("auto_recharge_amount_nano", Money, nullable=True),
    sa.Column("auto_recharge_method_id", sa.String(40), nullable=True),
    sa.Column("updated_at", Now, nullable=False),
    # What refunds and disputes took back beyond the balance (booked to platform:receivables).
    sa.Column("owed_nano", Money, nullable=False, server_default="0"),
    # The owners are emailed once when the balance falls under this amount (owner-set), and
    # again only after it has been back above it.
    sa.Column("low_balance_nano", Money, nullable=True),
    sa.Column("low_balance_alerted_at", Now, nullable=True),
)

# Webhook events, stored once per (processor, event id): redelivery is harmless.
webhook_events = sa.Table(
    "webhook_events", metadata,
    sa.Column("processor", sa.String(16), primary_key=True),
    sa.Column("event_id", sa.String(80), primary_key=True),
    sa.Column("type", sa.String(80), nullable=False),
    sa.Column("payment_id", sa.String(80), nullable=True),
    sa.Column("received_at", Now, nullable=False),
    sa.Column("processed_at", Now, nullable=True),
)

# One numbered receipt per successful payment.
receipts = sa.Table(
    "receipts", metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"), nullable=False,
              index=True),
    sa.Column("processor", sa.String(16), nullable=False),
    sa.Column("payment_id", sa.String(80), nullable=False, unique=True),
    sa.Column("amount_nano", Money, nullable=False),
    sa.Column("brand", sa.String(20), nullable=True),
    sa.Column("last4", sa.String(4), nullable=True),
    sa.Column("balance_after_nano", Money, nullable=False),
    sa.Column("created_at", Now, nullable=False),
)

# Codes of a fixed value the operator issues; stored as keyed hashes.
redemption_codes = sa.Table(
    "redemption_codes", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(8), nullable=False),
    sa.Column("amount_nano", Money, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=True),
    sa.Column("redeemed_at", Now, nullable=True),
    sa.Column("redeemed_by_organization", sa.String(40), nullable=True),
    sa.Column("redeemed_by_user", sa.String(40), nullable=True),
    sa.CheckConstraint("amount_nano > 0", name="positive"),
)

# Risk decisions on card binding, kept with their reason.
risk_decisions = sa.Table(
    "risk_decisions", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("organization_id", sa.String(40), nullable=False, index=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("created_at", Now, nullable=False),
    sa.CheckConstraint("decision IN ('allow', 'review', 'block')", name="decision"),
)

# --- Credit lots (ledger/lots.py) -------------------------------------------------------------

# One lot per credit that lands on an organization's account (the transfer that brought it), so
# that credit can be used in order (promotional first, then paid oldest first) and expire.
# `remaining_nano` is what is left after the consumption allocated so far (by the worker, from
# the account's debits); amount = remaining + consumed + expired. A lot's rows are only written
# with its account row locked.
credit_lots = sa.Table(
    "credit_lots", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("organization_id", sa.String(40), sa.ForeignKey("organizations.id"),
              nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
              index=True),
    # NULL only for the one lot per account of the credit from before lots existed (0006).
    sa.Column("source_transfer_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              sa.ForeignKey("transfers.id"), nullable=True, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),  # paid | promotional
    sa.Column("amount_nano", Money, nullable=False),
    sa.Column("remaining_nano", Money, nullable=False),
    sa.Column("expired_nano", Money, nullable=False, server_default="0"),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=True),  # NULL: never (or, paid, not yet dated)
    # Paid lots: the expiry period in months the worker gave the lot (0: never); NULL until
    # then. Promotional lots: NULL (their expiry, if any, is given at grant time).
    sa.Column("term_months", sa.SmallInteger, nullable=True, index=True),
    sa.Column("expired_at", Now, nullable=True),  # set once its date passed; remaining is 0
    sa.CheckConstraint("kind IN ('paid', 'promotional')", name="kind"),
    sa.CheckConstraint("amount_nano > 0 AND remaining_nano >= 0 AND expired_nano >= 0 "
                       "AND remaining_nano + expired_nano <= amount_nano", name="amounts"),
    sa.CheckConstraint("expired_at IS NULL OR remaining_nano = 0", name="expired_empty"),
    sa.Index("ix_credit_lots_due", "expired_at", "expires_at"),
)

# Per organization account: how much of its debits has been allocated to its lots, and the
# last refund transfer whose take-back was allocated to the refunded payment's own lot.
credit_lot_cursors = sa.Table(
    "credit_lot_cursors", metadata,
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("allocated_nano", Money, nullable=False),
    sa.Column("refund_transfer_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Now, nullable=False),
    sa.CheckConstraint("allocated_nano >= 0", name="nonnegative"),
)

# Refund take-backs of an account, found by the lot worker without reading its usage debits.
sa.Index("ix_transfers_refunds", transfers.c.debit_account_id, transfers.c.id,
         postgresql_where=transfers.c.kind == "refund",
         sqlite_where=transfers.c.kind == "refund")

# --- Operators (operators/) -------------------------------------------------------------------

# The people who run this Faregate, separate from users. The TOTP secret is encrypted with the
# server's encryption key; `totp_last_step` is the last 30-second step a code was accepted for
# (a code is accepted only for a later step: no replay).
operators = sa.Table(
    "operators", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("password_changed_at", Now, nullable=False),
    sa.Column("totp_secret_encrypted", sa.Text, nullable=False),
    sa.Column("totp_confirmed_at", Now, nullable=True),
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("disabled_at", Now, nullable=True),
    sa.Column("last_sign_in_at", Now, nullable=True),
    sa.CheckConstraint("role IN ('admin', 'support')", name="role"),
)

# Single-use recovery codes, as keyed hashes.
operator_recovery_codes = sa.Table(
    "operator_recovery_codes", metadata,
    sa.Column("operator_id", sa.String(40), sa.ForeignKey("operators.id"), primary_key=True),
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("used_at", Now, nullable=True),
)

# Operator sessions (the /admin cookie); only the token's hash is stored.
operator_sessions = sa.Table(
    "operator_sessions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("operator_id", sa.String(40), sa.ForeignKey("operators.id"), nullable=False,
              index=True),
    sa.Column("created_at", Now, nullable=False),
    sa.Column("expires_at", Now, nullable=False),
    sa.Column("last_seen_at", Now, nullable=False),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(300), nullable=True),
    sa.Column("revoked_at", Now, nullable=True),
)

# --- Request logs (usage/request_logs.py) ------------------------------------------------------

# The bodies of a request and of its response as relayed (for streams, the SSE bytes), each
# zlib-compressed and then encrypted with the server's encryption key; never a header. Written
# only for organizations with request logging on (or every one with FAREGATE_REQUEST_LOG=all),
# deleted after FAREGATE_REQUEST_LOG_RETENTION_DAYS. `request_id` is the usage record's.
request_logs = sa.Table(
    "request_logs", metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("organization_id", sa.String(40), nullable=False),
    sa.Column("created_at", Now, nullable=False, index=True),
    sa.Column("endpoint", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("request_sealed", sa.LargeBinary, nullable=False),
    sa.Column("response_sealed", sa.LargeBinary, nullable=False),
    sa.Column("request_bytes", sa.BigInteger, nullable=False),  # before truncation
    sa.Column("response_bytes", sa.BigInteger, nullable=False),
    sa.Column("truncated", sa.Boolean, nullable=False),
)

# Background jobs across every process that runs them (servers with FAREGATE_RUN_BACKGROUND_JOBS,
# `faregate worker` replicas): one row per job. A process runs a job only after claiming it —
# when it is due and nobody holds an unexpired lease — so a job runs once per interval across
# the fleet, never twice at the same time (worker/schedule.py).
job_runs = sa.Table(
    "job_runs", metadata,
    sa.Column("name", sa.String(60), primary_key=True),
    sa.Column("holder", sa.String(100), nullable=True),  # the process running it, if any
    sa.Column("lease_until", Now, nullable=True),
    sa.Column("next_run_at", Now, nullable=False),
    sa.Column("last_started_at", Now, nullable=True),
    sa.Column("last_finished_at", Now, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("runs", sa.BigInteger, nullable=False, server_default="0"),
)
