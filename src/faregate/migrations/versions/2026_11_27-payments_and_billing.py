"""payments and billing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 22:53:14.648935
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sandbox_customers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('reference', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_customers'))
    )
    op.create_table('sandbox_payments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=True),
    sa.Column('method_id', sa.String(length=40), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('capture_method', sa.String(length=10), nullable=False),
    sa.Column('off_session', sa.Boolean(), nullable=False),
    sa.Column('decline_code', sa.String(length=40), nullable=True),
    sa.Column('message', sa.String(length=300), nullable=True),
    sa.Column('refunded_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_payments')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_sandbox_payments_idempotency_key'))
    )
    op.create_table('webhook_events',
    sa.Column('processor', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=80), nullable=False),
    sa.Column('type', sa.String(length=80), nullable=False),
    sa.Column('payment_id', sa.String(length=80), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('processor', 'event_id', name=op.f('pk_webhook_events'))
    )
    op.create_table('billing_customers',
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('processor', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_billing_customers_organization_id_organizations')),
    sa.PrimaryKeyConstraint('organization_id', 'processor', name=op.f('pk_billing_customers')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_billing_customers_customer_id'))
    )
    op.create_table('billing_states',
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('failed_charges', sa.Integer(), server_default='0', nullable=False),
    sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('suspended_reason', sa.String(length=300), nullable=True),
    sa.Column('auto_recharge', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('auto_recharge_threshold_nano', sa.BigInteger(), nullable=True),
    sa.Column('auto_recharge_amount_nano', sa.BigInteger(), nullable=True),
    sa.Column('auto_recharge_method_id', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_billing_states_organization_id_organizations')),
    sa.PrimaryKeyConstraint('organization_id', name=op.f('pk_billing_states'))
    )
    op.create_table('charge_attempts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('processor', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('payment_method_id', sa.String(length=40), nullable=True),
    sa.Column('amount_nano', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('payment_id', sa.String(length=80), nullable=True),
    sa.Column('decline_code', sa.String(length=40), nullable=True),
    sa.Column('message', sa.String(length=300), nullable=True),
    sa.Column('client_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('credited_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_nano > 0 AND amount_minor > 0', name=op.f('ck_charge_attempts_positive')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_charge_attempts_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_attempts')),
    sa.UniqueConstraint('organization_id', 'client_key', name='uq_charge_attempts_client_key'),
    sa.UniqueConstraint('payment_id', name=op.f('uq_charge_attempts_payment_id'))
    )
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charge_attempts_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('ix_charge_attempts_status', ['status', 'created_at'], unique=False)

    op.create_table('payment_methods',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('processor', sa.String(length=16), nullable=False),
    sa.Column('method_id', sa.String(length=80), nullable=False),
    sa.Column('brand', sa.String(length=20), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('exp_month', sa.Integer(), nullable=False),
    sa.Column('exp_year', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('billing_country', sa.String(length=2), nullable=True),
    sa.Column('billing_postal_code', sa.String(length=20), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_payment_methods_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_methods')),
    sa.UniqueConstraint('method_id', name=op.f('uq_payment_methods_method_id'))
    )
    with op.batch_alter_table('payment_methods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_methods_organization_id'), ['organization_id'], unique=False)

    op.create_table('sandbox_payment_methods',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=True),
    sa.Column('brand', sa.String(length=20), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('exp_month', sa.Integer(), nullable=False),
    sa.Column('exp_year', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('behavior', sa.String(length=40), nullable=False),
    sa.Column('billing', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detached_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['sandbox_customers.id'], name=op.f('fk_sandbox_payment_methods_customer_id_sandbox_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_payment_methods'))
    )
    with op.batch_alter_table('sandbox_payment_methods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_payment_methods_customer_id'), ['customer_id'], unique=False)
    # Where bought credit comes from: one clearing account per processor (the sandbox's is
    # separate, so simulated money never mixes with real money).
    op.execute("INSERT INTO accounts (code, kind, guarded, credits_nano, debits_nano, held_nano) "
               "VALUES ('platform:sandbox_clearing', 'clearing', false, 0, 0, 0), "
               "('platform:stripe_clearing', 'clearing', false, 0, 0, 0)")


def downgrade() -> None:
    op.execute("DELETE FROM accounts WHERE code IN ('platform:sandbox_clearing', "
               "'platform:stripe_clearing')")
    with op.batch_alter_table('sandbox_payment_methods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_payment_methods_customer_id'))

    op.drop_table('sandbox_payment_methods')
    with op.batch_alter_table('payment_methods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_methods_organization_id'))

    op.drop_table('payment_methods')
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_charge_attempts_status')
        batch_op.drop_index(batch_op.f('ix_charge_attempts_organization_id'))

    op.drop_table('charge_attempts')
    op.drop_table('billing_states')
    op.drop_table('billing_customers')
    op.drop_table('webhook_events')
    op.drop_table('sandbox_payments')
    op.drop_table('sandbox_customers')
