"""every phase's rows reference their use case: a foreign key to its name; one head from here

Revision ID: 0010
Revises: 0002, 0003, 0005, 0007, 0008, 0009

A row naming a use case that does not exist (only a hand edit makes one: use cases are never
deleted or renamed) stops the upgrade with the statement that lists them. It is not repaired:
deleting a model version's or a batch job's lineage is not a migration's decision to make.
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = ('0002', '0003', '0005', '0007', '0008', '0009')
branch_labels = None
depends_on = None

TABLES = ('training_runs', 'model_versions', 'batch_jobs', 'monitor_results', 'alerts', 'kpi_values',
          'retrain_requests')


def _orphans(table: str) -> str:
    return f"SELECT DISTINCT usecase FROM {table} WHERE usecase NOT IN (SELECT name FROM usecases)"


def upgrade() -> None:
    bind = op.get_bind()
    found = {t: sorted(bind.execute(sa.text(_orphans(t))).scalars()) for t in TABLES}
    if named := {t: names for t, names in found.items() if names}:
        listed = "; ".join(f"{t}: {', '.join(map(repr, names))}" for t, names in sorted(named.items()))
        raise RuntimeError(f"upgrade 0010: rows name use cases that do not exist ({listed}); "
                           "keep or delete them by hand (they are listed by "
                           f"{_orphans('<table>')!r}), then run `valueloop db migrate`")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f'{table}_usecase_fkey', 'usecases', ['usecase'], ['name'])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f'{table}_usecase_fkey', type_='foreignkey')
