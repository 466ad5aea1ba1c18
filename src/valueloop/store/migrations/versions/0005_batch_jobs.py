"""deploy: batch scoring jobs and their lineage

Revision ID: 0005
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models


revision = '0005'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('model_ref', sa.String(length=64), nullable=False),
    sa.Column('input', sa.Text(), nullable=False),
    sa.Column('input_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('output', sa.Text(), nullable=False),
    sa.Column('output_format', sa.String(length=16), nullable=False),
    sa.Column('staging', sa.Text(), nullable=False),
    sa.Column('executor', sa.String(length=255), nullable=False),
    sa.Column('part_rows', sa.Integer(), nullable=False),
    sa.Column('parts_total', sa.Integer(), nullable=False),
    sa.Column('parts_done', sa.Integer(), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('started_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', valueloop.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('batch_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_jobs_usecase'), ['usecase'], unique=False)
        batch_op.create_index(batch_op.f('ix_batch_jobs_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batch_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_batch_jobs_usecase'))
    op.drop_table('batch_jobs')
