"""duties: privacy officers appointed globally, system principals that act under a standing authorization

Revision ID: 0008
Revises: 0001
"""

import hashlib
import json

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: a batch (copy and drop) of users fails its members' foreign keys on SQLite
    op.add_column('users', sa.Column('is_privacy_officer', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column('users', sa.Column('is_system', sa.Boolean(), nullable=False, server_default=sa.false()))
    # a privacy officer named in a use case file becomes an appointed officer, and holds no membership
    op.execute("UPDATE users SET is_privacy_officer = true WHERE id IN "
               "(SELECT user_id FROM members WHERE role = 'privacy_officer')")
    op.execute("DELETE FROM members WHERE role = 'privacy_officer'")
    # ... and the stored use case files no longer name one (the file's schema refuses it)
    usecases = sa.table("usecases", sa.column("id", sa.Integer()), sa.column("spec", sa.JSON()),
                        sa.column("spec_digest", sa.String()))
    bind = op.get_bind()
    for row in bind.execute(sa.select(usecases.c.id, usecases.c.spec)).all():
        spec = dict(row.spec)
        if "privacy_officer" in (spec.get("members") or {}):
            spec["members"] = {k: v for k, v in spec["members"].items() if k != "privacy_officer"}
            digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
            bind.execute(usecases.update().where(usecases.c.id == row.id).values(spec=spec, spec_digest=digest))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('is_system')
        batch_op.drop_column('is_privacy_officer')
