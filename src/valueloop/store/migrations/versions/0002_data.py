"""data: dataset versions with their lineage, quality report and profile

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataset_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('usecase_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('schema', sa.JSON(), nullable=False),
    sa.Column('source_fingerprints', sa.JSON(), nullable=False),
    sa.Column('transform_hash', sa.String(length=64), nullable=False),
    sa.Column('dpia_version', sa.Integer(), nullable=False),
    sa.Column('treatments', sa.JSON(), nullable=False),
    sa.Column('quality', sa.JSON(), nullable=False),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('project_dir', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['usecase_id'], ['usecases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('usecase_id', 'version')
    )
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_versions_usecase_id'), ['usecase_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_versions_usecase_id'))
    op.drop_table('dataset_versions')
