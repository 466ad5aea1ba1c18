"""learn: training runs and model versions

Revision ID: 0003
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('training_id', sa.String(length=32), nullable=False),
    sa.Column('dataset_version', sa.Integer(), nullable=False),
    sa.Column('dpia_version', sa.Integer(), nullable=False),
    sa.Column('candidate', sa.JSON(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('split', sa.JSON(), nullable=False),
    sa.Column('git_commit', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('reproduces', sa.String(length=64), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id')
    )
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_index('ix_training_runs_usecase', ['usecase'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_runs_training_id'), ['training_id'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=False),
    sa.Column('registered_name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_version', sa.Integer(), nullable=False),
    sa.Column('dpia_version', sa.Integer(), nullable=False),
    sa.Column('artifact_uri', sa.Text(), nullable=False),
    sa.Column('artifact_digest', sa.String(length=64), nullable=False),
    sa.Column('test_report', sa.JSON(), nullable=False),
    sa.Column('tests_passed', sa.Boolean(), nullable=False),
    sa.Column('acceptance', sa.String(length=16), nullable=False),
    sa.Column('accepted_by', sa.String(length=64), nullable=True),
    sa.Column('acceptance_comment', sa.Text(), nullable=True),
    sa.Column('accepted_at', valueloop.store.models.UTCDateTime(), nullable=True),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('created_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('usecase', 'version')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('ix_model_versions_usecase', ['usecase'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_model_versions_usecase')
    op.drop_table('model_versions')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_runs_training_id'))
        batch_op.drop_index('ix_training_runs_usecase')
    op.drop_table('training_runs')
