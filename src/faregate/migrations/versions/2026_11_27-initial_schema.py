"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 20:05:16.618986
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('input_nano_per_1m', sa.BigInteger(), nullable=False),
    sa.Column('cached_input_nano_per_1m', sa.BigInteger(), nullable=False),
    sa.Column('output_nano_per_1m', sa.BigInteger(), nullable=False),
    sa.Column('default_max_tokens', sa.Integer(), nullable=False),
    sa.Column('max_output_tokens', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('owned_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('default_max_tokens >= 1 AND max_output_tokens >= default_max_tokens', name=op.f('ck_models_limits')),
    sa.CheckConstraint('input_nano_per_1m >= 0 AND cached_input_nano_per_1m >= 0 AND output_nano_per_1m >= 0', name=op.f('ck_models_prices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models'))
    )
    op.create_table('organizations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations'))
    )
    op.create_table('upstreams',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('base_url', sa.String(length=1000), nullable=False),
    sa.Column('api_key_encrypted', sa.Text(), nullable=True),
    sa.Column('api_key_env', sa.String(length=200), nullable=True),
    sa.Column('connect_timeout_ms', sa.Integer(), nullable=False),
    sa.Column('read_timeout_ms', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upstreams')),
    sa.UniqueConstraint('name', name=op.f('uq_upstreams_name'))
    )
    op.create_table('usage_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('api_key_id', sa.String(length=40), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('upstream', sa.String(length=120), nullable=True),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cached_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('usage_source', sa.String(length=12), nullable=False),
    sa.Column('cost_nano', sa.BigInteger(), nullable=False),
    sa.Column('charged_nano', sa.BigInteger(), nullable=False),
    sa.Column('writeoff_nano', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('streamed', sa.Boolean(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('settlement_id', sa.String(length=40), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('charged_nano >= 0 AND writeoff_nano >= 0', name=op.f('ck_usage_records_nonnegative')),
    sa.CheckConstraint('cost_nano = charged_nano + writeoff_nano', name=op.f('ck_usage_records_cost_split')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_records')),
    sa.UniqueConstraint('request_id', name=op.f('uq_usage_records_request_id'))
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_org_settled', ['organization_id', 'settled_at'], unique=False)

    op.create_table('accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=True),
    sa.Column('guarded', sa.Boolean(), nullable=False),
    sa.Column('credits_nano', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('debits_nano', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('held_nano', sa.BigInteger(), server_default='0', nullable=False),
    sa.CheckConstraint('NOT guarded OR debits_nano + held_nano <= credits_nano', name=op.f('ck_accounts_no_overdraft')),
    sa.CheckConstraint('credits_nano >= 0 AND debits_nano >= 0 AND held_nano >= 0', name=op.f('ck_accounts_nonnegative')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_accounts_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_accounts_code'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_organization_id'), ['organization_id'], unique=False)

    op.create_table('upstream_models',
    sa.Column('upstream_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('upstream_model', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_upstream_models_model_id_models'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upstream_id'], ['upstreams.id'], name=op.f('fk_upstream_models_upstream_id_upstreams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upstream_id', 'model_id', name=op.f('pk_upstream_models'))
    )
    op.create_table('users',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_users_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('redacted', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_api_keys_organization_id_organizations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_keys_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_organization_id'), ['organization_id'], unique=False)

    op.create_table('leases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('amount_nano', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('expires_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('closed_at_ms', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'closed', 'voided')", name=op.f('ck_leases_status')),
    sa.CheckConstraint('amount_nano >= 0', name=op.f('ck_leases_nonnegative')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_leases_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leases'))
    )
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leases_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leases_expires_at_ms'), ['expires_at_ms'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('debit_account_id', sa.Integer(), nullable=False),
    sa.Column('credit_account_id', sa.Integer(), nullable=False),
    sa.Column('amount_nano', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('settlement_id', sa.String(length=40), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_nano > 0', name=op.f('ck_transfers_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_transfers_two_sides')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['accounts.id'], name=op.f('fk_transfers_credit_account_id_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['accounts.id'], name=op.f('fk_transfers_debit_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_transfers_idempotency_key'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_credit_account_id'), ['credit_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_debit_account_id'), ['debit_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_settlement_id'), ['settlement_id'], unique=False)



    accounts = sa.table("accounts", sa.column("code", sa.String), sa.column("kind", sa.String),
                        sa.column("guarded", sa.Boolean))
    op.bulk_insert(accounts, [
        # Where granted (promotional) credit comes from; its debits grow with every grant.
        {"code": "platform:grants", "kind": "grants", "guarded": False},
        # Where usage charges go.
        {"code": "platform:revenue", "kind": "revenue", "guarded": False},
        # Usage that could not be charged (an upstream overshot past the balance).
        {"code": "platform:writeoff", "kind": "writeoff", "guarded": False},
    ])

def downgrade() -> None:
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfers_settlement_id'))
        batch_op.drop_index(batch_op.f('ix_transfers_debit_account_id'))
        batch_op.drop_index(batch_op.f('ix_transfers_credit_account_id'))

    op.drop_table('transfers')
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leases_expires_at_ms'))
        batch_op.drop_index(batch_op.f('ix_leases_account_id'))

    op.drop_table('leases')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_organization_id'))

    op.drop_table('api_keys')
    op.drop_table('users')
    op.drop_table('upstream_models')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_organization_id'))

    op.drop_table('accounts')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_org_settled')

    op.drop_table('usage_records')
    op.drop_table('upstreams')
    op.drop_table('organizations')
    op.drop_table('models')
