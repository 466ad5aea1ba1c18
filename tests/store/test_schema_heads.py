"""A command's start: a database already at the newest schema is used as it is, without importing
alembic and loading every migration script to learn the newest revisions (half a second of each
command's start). One behind them is migrated on first use (test_migration_upgrade.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from valueloop.config import Settings
from valueloop.store import session
from valueloop.store.db import HEADS, MIGRATIONS, _alembic_config

SCRIPT = """
import json, sys
from valueloop.config import load_settings
from valueloop.store import session
from sqlalchemy import text

with session(load_settings()) as s:
    found = s.scalar(text("SELECT count(*) FROM usecases"))
print(json.dumps({"usecases": found, "alembic": sorted(m for m in sys.modules if m.split(".")[0] == "alembic")}))
"""


def test_the_newest_revisions_are_the_scripts_heads() -> None:
    from alembic.script import ScriptDirectory

    assert set(ScriptDirectory.from_config(_alembic_config(None)).get_heads()) == HEADS, (
        f"store/db.py HEADS: set it to the migration scripts' heads ({MIGRATIONS})")


def test_a_database_at_the_newest_schema_is_opened_without_alembic(db_settings: Settings) -> None:
    with session(db_settings):  # migrated on first use
        pass
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | db_settings.as_env()
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == {"usecases": 0, "alembic": []}

