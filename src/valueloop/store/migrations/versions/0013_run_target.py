"""learn: each training run records its target (task, classes, positive class, decision threshold)

Revision ID: 0013
Revises: 0012
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('training_runs', sa.Column('target', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('training_runs', 'target')
