"""store: intents, recorded before each write to an external store and marked done with its rows

Revision ID: 0012
Revises: 0011
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('usecase', sa.String(length=64), nullable=True),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', valueloop.store.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', valueloop.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['usecase'], ['usecases.name'], name='intents_usecase_fkey'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_intents_kind', 'intents', ['kind'])
    op.create_index('ix_intents_usecase', 'intents', ['usecase'])
    op.create_index('ix_intents_status', 'intents', ['status'])


def downgrade() -> None:
    op.drop_table('intents')
