"""usage rollups, project budgets, alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 01:11:13.717157
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rollup_state',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_state'))
    )
    op.create_table('usage_rollups',
    sa.Column('width', sa.String(length=2), nullable=False),
    sa.Column('organization_id', sa.String(length=40), nullable=False),
    sa.Column('bucket_start', sa.BigInteger(), nullable=False),
    sa.Column('project_id', sa.String(length=40), nullable=False),
    sa.Column('api_key_id', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('failed_requests', sa.BigInteger(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cached_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_nano', sa.BigInteger(), nullable=False),
    sa.Column('charged_nano', sa.BigInteger(), nullable=False),
    sa.Column('writeoff_nano', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("width IN ('1m', '1h', '1d')", name=op.f('ck_usage_rollups_width')),
    sa.PrimaryKeyConstraint('width', 'organization_id', 'bucket_start', 'project_id', 'api_key_id', 'model', 'endpoint', name=op.f('pk_usage_rollups'))
    )
    op.create_table('budget_alerts',
    sa.Column('project_id', sa.String(length=40), nullable=False),
    sa.Column('period_start', sa.String(length=10), nullable=False),
    sa.Column('threshold_pct', sa.Integer(), nullable=False),
    sa.Column('spent_nano', sa.BigInteger(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_budget_alerts_project_id_projects')),
    sa.PrimaryKeyConstraint('project_id', 'period_start', 'threshold_pct', name=op.f('pk_budget_alerts'))
    )
    with op.batch_alter_table('billing_states', schema=None) as batch_op:
        batch_op.add_column(sa.Column('low_balance_nano', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('low_balance_alerted_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monthly_budget_nano', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('budget_alert_pcts', sa.String(length=60), nullable=True))
        batch_op.create_check_constraint(
            'budget_positive', 'monthly_budget_nano IS NULL OR monthly_budget_nano > 0')

    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=40), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_column('project_id')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_projects_budget_positive'), type_='check')
        batch_op.drop_column('budget_alert_pcts')
        batch_op.drop_column('monthly_budget_nano')

    with op.batch_alter_table('billing_states', schema=None) as batch_op:
        batch_op.drop_column('low_balance_alerted_at')
        batch_op.drop_column('low_balance_nano')

    op.drop_table('budget_alerts')
    op.drop_table('usage_rollups')
    op.drop_table('rollup_state')
