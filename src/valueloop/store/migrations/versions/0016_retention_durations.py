"""outcomes: a DPIA column's retention becomes a duration by the one rule (730d), as files now say

Revision ID: 0016
Revises: 0015

Files stored before spelled retention freely ("24 months"); the use case file now takes a duration
(durations.py) so that retention can be enforced. Spellings of a number and a unit (days, weeks,
months, years) become days, in the stored file and in the DPIA versions that hold the same text,
whose digests are recomputed, so a DPIA decided before stays decided. A spelling that says no
period becomes the longest duration in the file and in the stored file only, not in the DPIA
versions: nothing was enforced before, and the privacy officer decides the period again.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_SPELLED = re.compile(r"\s*(\d+)\s*(day|week|month|year)s?\s*", re.IGNORECASE)
_DAYS = {"day": 1, "week": 7, "month": 365 / 12, "year": 365}
_LONGEST = "36500d"  # durations.LONGEST_DAYS, as of this revision


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _as_duration(retention: Any, dropped: bool) -> tuple[str, bool]:
    """The retention as this revision's files say it, and whether it means the same period."""
    if not isinstance(retention, str):
        return (("not stored", True) if dropped else (_LONGEST, False))
    if retention == "not stored" or re.fullmatch(r"\d+[smhd]", retention):
        return retention, True
    spelled = _SPELLED.fullmatch(retention)
    if spelled is not None:
        return f"{max(1, round(int(spelled[1]) * _DAYS[spelled[2].lower()]))}d", True
    return ("not stored", True) if dropped else (_LONGEST, False)


def _converted(privacy: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The privacy section with durations, and whether every period kept its meaning."""
    same = True
    for column in privacy.get("columns") or []:
        if "retention" in column:
            column["retention"], kept = _as_duration(column["retention"], column.get("treatment") == "drop")
            same &= kept
    return privacy, same


def upgrade() -> None:
    conn = op.get_bind()
    usecases = sa.table("usecases", sa.column("id"), sa.column("spec", sa.JSON), sa.column("spec_digest"))
    assessments = sa.table("privacy_assessments", sa.column("id"), sa.column("content", sa.JSON),
                           sa.column("content_digest"))
    for row in conn.execute(sa.select(usecases.c.id, usecases.c.spec)).all():
        spec = row.spec if isinstance(row.spec, dict) else json.loads(row.spec)
        before = json.dumps(spec, sort_keys=True)
        if isinstance(spec.get("privacy"), dict):
            _converted(spec["privacy"])
        if json.dumps(spec, sort_keys=True) != before:
            conn.execute(usecases.update().where(usecases.c.id == row.id)
                         .values(spec=spec, spec_digest=_digest(spec)))
    for row in conn.execute(sa.select(assessments.c.id, assessments.c.content)).all():
        content = row.content if isinstance(row.content, dict) else json.loads(row.content)
        before = json.dumps(content, sort_keys=True)
        content, same = _converted(content)
        if same and json.dumps(content, sort_keys=True) != before:
            conn.execute(assessments.update().where(assessments.c.id == row.id)
                         .values(content=content, content_digest=_digest(content)))


def downgrade() -> None:
    """Nothing to undo: a duration is a retention the files before this revision accepted too."""
