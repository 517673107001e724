"""credit lots: one per credit to an organization, used in order and expiring

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 01:24:03.218790
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('credit_lot_cursors',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('allocated_nano', sa.BigInteger(), nullable=False),
    sa.Column('refund_transfer_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('allocated_nano >= 0', name=op.f('ck_credit_lot_cursors_nonnegative')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_credit_lot_cursors_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_credit_lot_cursors'))
    )
    op.create_table('credit_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('source_transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount_nano', sa.BigInteger(), nullable=False),
    sa.Column('remaining_nano', sa.BigInteger(), nullable=False),
    sa.Column('expired_nano', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('term_months', sa.SmallInteger(), nullable=True),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('paid', 'promotional')", name=op.f('ck_credit_lots_kind')),
    sa.CheckConstraint('amount_nano > 0 AND remaining_nano >= 0 AND expired_nano >= 0 AND remaining_nano + expired_nano <= amount_nano', name=op.f('ck_credit_lots_amounts')),
    sa.CheckConstraint('expired_at IS NULL OR remaining_nano = 0', name=op.f('ck_credit_lots_expired_empty')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_credit_lots_account_id_accounts')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_credit_lots_organization_id_organizations')),
    sa.ForeignKeyConstraint(['source_transfer_id'], ['transfers.id'], name=op.f('fk_credit_lots_source_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_lots')),
    sa.UniqueConstraint('source_transfer_id', name=op.f('uq_credit_lots_source_transfer_id'))
    )
    with op.batch_alter_table('credit_lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_lots_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_credit_lots_due', ['expired_at', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_lots_term_months'), ['term_months'], unique=False)

    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index('ix_transfers_refunds', ['debit_account_id', 'id'], unique=False, postgresql_where=sa.text("kind = 'refund'"), sqlite_where=sa.text("kind = 'refund'"))

    # Where expired credit goes.
    op.execute("INSERT INTO accounts (code, kind, guarded, credits_nano, debits_nano, held_nano) "
               "VALUES ('platform:expired_credit', 'expired_credit', false, 0, 0, 0)")
    # The credit organizations already have becomes one paid lot per account that never
    # expires (it was sold without an expiry): amount = every credit so far, remaining = the
    # balance, and the cursor starts with every debit so far allocated, past every refund.
    op.execute("INSERT INTO credit_lots (organization_id, account_id, source_transfer_id, kind, "
               "amount_nano, remaining_nano, expired_nano, created_at, expires_at, term_months, "
               "expired_at) "
               "SELECT organization_id, id, NULL, 'paid', credits_nano, "
               "credits_nano - debits_nano, 0, CURRENT_TIMESTAMP, NULL, 0, NULL "
               "FROM accounts WHERE kind = 'org_credit' AND credits_nano > 0")
    op.execute("INSERT INTO credit_lot_cursors (account_id, allocated_nano, refund_transfer_id, "
               "updated_at) "
               "SELECT id, debits_nano, (SELECT COALESCE(MAX(id), 0) FROM transfers), "
               "CURRENT_TIMESTAMP FROM accounts WHERE kind = 'org_credit' AND credits_nano > 0")


def downgrade() -> None:
    op.execute("DELETE FROM accounts WHERE code = 'platform:expired_credit'")
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_transfers_refunds', postgresql_where=sa.text("kind = 'refund'"), sqlite_where=sa.text("kind = 'refund'"))

    with op.batch_alter_table('credit_lots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_lots_term_months'))
        batch_op.drop_index('ix_credit_lots_due')
        batch_op.drop_index(batch_op.f('ix_credit_lots_account_id'))

    op.drop_table('credit_lots')
    op.drop_table('credit_lot_cursors')
