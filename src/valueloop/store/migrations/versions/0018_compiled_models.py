"""learn: a model version's compiled library (artifact, digest, compiler) or the note why it has none

Revision ID: 0018
Revises: 0017
"""

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('model_versions', sa.Column('compiled', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('model_versions', 'compiled')
