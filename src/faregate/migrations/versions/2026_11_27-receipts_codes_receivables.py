"""receipts, redemption codes, receivables, risk decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 23:28:36.278875
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('redemption_codes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('hint', sa.String(length=8), nullable=False),
    sa.Column('amount_nano', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('redeemed_by_organization', sa.String(length=40), nullable=True),
    sa.Column('redeemed_by_user', sa.String(length=40), nullable=True),
    sa.CheckConstraint('amount_nano > 0', name=op.f('ck_redemption_codes_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redemption_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_redemption_codes_code_hash'))
    )
    op.create_table('risk_decisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("decision IN ('allow', 'review', 'block')", name=op.f('ck_risk_decisions_decision')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_decisions'))
    )
    with op.batch_alter_table('risk_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_decisions_organization_id'), ['organization_id'], unique=False)

    op.create_table('receipts',
    sa.Column('number', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('processor', sa.String(length=16), nullable=False),
    sa.Column('payment_id', sa.String(length=80), nullable=False),
    sa.Column('amount_nano', sa.BigInteger(), nullable=False),
    sa.Column('brand', sa.String(length=20), nullable=True),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('balance_after_nano', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_receipts_organization_id_organizations')),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_receipts')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_receipts_payment_id'))
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_receipts_organization_id'), ['organization_id'], unique=False)

    with op.batch_alter_table('billing_states', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owed_nano', sa.BigInteger(), server_default='0', nullable=False))
    # What organizations owe after refunds or disputes of credit they had already spent.
    op.execute("INSERT INTO accounts (code, kind, guarded, credits_nano, debits_nano, held_nano) "
               "VALUES ('platform:receivables', 'receivables', false, 0, 0, 0)")


def downgrade() -> None:
    op.execute("DELETE FROM accounts WHERE code = 'platform:receivables'")
    with op.batch_alter_table('billing_states', schema=None) as batch_op:
        batch_op.drop_column('owed_nano')

    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_receipts_organization_id'))

    op.drop_table('receipts')
    with op.batch_alter_table('risk_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_decisions_organization_id'))

    op.drop_table('risk_decisions')
    op.drop_table('redemption_codes')
