"""operate: one running retraining per use case, kept by the database

Revision ID: 0009
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # abandoned rows (a process that died) would block the index: they end as the loop would end them
    op.execute("UPDATE retrain_requests SET status = 'failed', decision = 'abandoned: still running at upgrade' "
               "WHERE status = 'running' AND id NOT IN (SELECT max(id) FROM retrain_requests "
               "WHERE status = 'running' GROUP BY usecase)")
    op.create_index('ix_retrain_requests_one_running', 'retrain_requests', ['usecase'], unique=True,
                    sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index('ix_retrain_requests_one_running', 'retrain_requests')
