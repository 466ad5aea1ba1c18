"""audit chain: each event hashed and linked to the one before, the chain head, no TRUNCATE

Revision ID: 0007
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import valueloop.store.models
from valueloop.outcomes.audit import GENESIS, content_hash


revision = '0007'
down_revision = '0001'
branch_labels = None
depends_on = None

_REFUSE = "BEGIN SELECT RAISE(ABORT, '{}'); END"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_append_only(sqlite)
    op.add_column('audit_events', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('audit_events', sa.Column('hash', sa.String(length=64), nullable=True))
    position, head = _chain_existing_events()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute(sa.text("INSERT INTO audit_chain_head (id, position, hash) VALUES (1, :p, :h)")
               .bindparams(p=position, h=head))
    (_protect_sqlite if sqlite else _protect_postgresql)()


def _chain_existing_events() -> tuple[int, str]:
    """Hash the events already there, oldest first; returns the new chain head."""
    events = sa.table(
        'audit_events', sa.column('id', sa.Integer()), sa.column('at', valueloop.store.models.UTCDateTime()),
        *(sa.column(c, sa.String()) for c in ('actor', 'action', 'object_type', 'object_id', 'usecase')),
        sa.column('before', sa.JSON()), sa.column('after', sa.JSON()),
        sa.column('prev_hash', sa.String()), sa.column('hash', sa.String()),
    )
    bind = op.get_bind()
    position, head = 0, GENESIS
    for row in bind.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        digest = content_hash({**row, "prev_hash": head})
        bind.execute(events.update().where(events.c.id == row["id"]).values(prev_hash=head, hash=digest))
        position, head = row["id"], digest
    return position, head


def _drop_append_only(sqlite: bool) -> None:
    if sqlite:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    else:
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")


def _protect_sqlite() -> None:
    """Batch mode rebuilt the table without its triggers: they come back. The head never moves back
    (appending moves it on, then sets its hash)."""
    for verb in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                   + _REFUSE.format("audit log is append-only"))
    op.execute("CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head "
               + _REFUSE.format("audit chain head only moves forward"))
    op.execute("CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head "
               "WHEN NEW.position < OLD.position OR NEW.id != OLD.id "
               + _REFUSE.format("audit chain head only moves forward"))


def _protect_postgresql() -> None:
    """Row triggers do not see TRUNCATE: a statement trigger refuses it as well."""
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE FUNCTION audit_chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP <> 'UPDATE' OR NEW.position < OLD.position OR NEW.id <> OLD.id THEN "
        "RAISE EXCEPTION 'audit chain head only moves forward'; END IF; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE OR DELETE ON audit_chain_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward()"
    )
    op.execute(
        "CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_forward()"
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER audit_chain_head_forward")
        op.execute("DROP TRIGGER audit_chain_head_no_delete")
    else:
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_chain_head_no_truncate ON audit_chain_head")
        op.execute("DROP TRIGGER audit_chain_head_forward ON audit_chain_head")
        op.execute("DROP FUNCTION audit_chain_head_forward()")
    op.drop_table('audit_chain_head')
    _drop_append_only(sqlite)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                       + _REFUSE.format("audit log is append-only"))
    else:
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
