"""data: what serving needs to treat a raw record as ingest treated its source, per dataset version

Revision ID: 0014
Revises: 0013

Versions made before have none (null): models trained on them take treated features only.
"""

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('dataset_versions', sa.Column('serving', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('dataset_versions', 'serving')
