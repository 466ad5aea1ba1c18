"""learn: each model version's card, the data scientist's limitations and the owner's sign-off

Revision ID: 0015
Revises: 0014

card_digest is the digest of the card as last generated; card_signed_digest the one the owner
signed. A card whose statements changed has another digest, and the sign-off no longer holds.
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_COLUMNS = ('card_digest', 'card_limitations', 'card_signed_digest', 'card_signed_by', 'card_signed_at')


def upgrade() -> None:
    with op.batch_alter_table('model_versions') as batch:
        batch.add_column(sa.Column('card_digest', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('card_limitations', sa.Text(), nullable=True))
        batch.add_column(sa.Column('card_signed_digest', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('card_signed_by', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('card_signed_at', valueloop.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_versions') as batch:
        for column in _COLUMNS:
            batch.drop_column(column)
