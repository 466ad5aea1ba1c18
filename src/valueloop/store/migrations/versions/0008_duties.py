"""duties: privacy officers appointed globally, system principals that act under a standing authorization

Revision ID: 0008
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_privacy_officer', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('is_system', sa.Boolean(), nullable=False, server_default=sa.false()))
    # a privacy officer named in a use case file becomes an appointed officer, and holds no membership
    op.execute("UPDATE users SET is_privacy_officer = true WHERE id IN "
               "(SELECT user_id FROM members WHERE role = 'privacy_officer')")
    op.execute("DELETE FROM members WHERE role = 'privacy_officer'")


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('is_system')
        batch_op.drop_column('is_privacy_officer')
