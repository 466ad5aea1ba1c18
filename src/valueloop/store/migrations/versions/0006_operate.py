"""operate: monitor results, alerts, business KPI values, retrain requests

Revision ID: 0006
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models


revision = '0006'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitor_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('window_start', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('window_end', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('labeled', sa.Integer(), nullable=False),
    sa.Column('model_versions', sa.JSON(), nullable=False),
    sa.Column('reference_version', sa.Integer(), nullable=True),
    sa.Column('drift', sa.JSON(), nullable=False),
    sa.Column('dataset_drift', sa.Boolean(), nullable=False),
    sa.Column('drift_share', sa.Float(), nullable=False),
    sa.Column('prediction_drift', sa.JSON(), nullable=True),
    sa.Column('missing', sa.JSON(), nullable=False),
    sa.Column('unseen', sa.JSON(), nullable=False),
    sa.Column('performance', sa.JSON(), nullable=False),
    sa.Column('estimated', sa.Boolean(), nullable=False),
    sa.Column('health', sa.JSON(), nullable=False),
    sa.Column('computed_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_monitor_results_window', 'monitor_results', ['usecase', 'window_start'])
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('deliveries', sa.JSON(), nullable=False),
    sa.Column('created_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('acknowledged_at', valueloop.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_alerts_usecase', 'alerts', ['usecase'])
    op.create_index('ix_alerts_dedup_key', 'alerts', ['dedup_key'])
    op.create_table('kpi_values',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=True),
    sa.Column('reported_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_kpi_values_usecase', 'kpi_values', ['usecase'])
    op.create_table('retrain_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=True),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('dataset_version', sa.Integer(), nullable=True),
    sa.Column('champion_version', sa.String(length=32), nullable=True),
    sa.Column('challenger_version', sa.String(length=32), nullable=True),
    sa.Column('comparison', sa.JSON(), nullable=True),
    sa.Column('decision', sa.Text(), nullable=True),
    sa.Column('created_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', valueloop.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_retrain_requests_usecase', 'retrain_requests', ['usecase'])


def downgrade() -> None:
    op.drop_table('retrain_requests')
    op.drop_table('kpi_values')
    op.drop_table('alerts')
    op.drop_table('monitor_results')
