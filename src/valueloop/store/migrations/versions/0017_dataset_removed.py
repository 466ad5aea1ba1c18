"""data: why a dataset version's files were removed (retention or an erasure), null while readable

Revision ID: 0017
Revises: 0016
"""

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('dataset_versions', sa.Column('removed', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('dataset_versions', 'removed')
