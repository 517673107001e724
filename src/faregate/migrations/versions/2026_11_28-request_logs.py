"""request logs: encrypted request and response bodies, per-organization opt-in

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 02:34:30.799412
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('request_logs',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('request_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('response_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('request_bytes', sa.BigInteger(), nullable=False),
    sa.Column('response_bytes', sa.BigInteger(), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_request_logs'))
    )
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_logs_created_at'), ['created_at'],
                              unique=False)

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_logging_until', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('request_logging_until')

    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_logs_created_at'))

    op.drop_table('request_logs')
