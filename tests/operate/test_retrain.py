"""The closed loop end to end, through the demo chapter: drift found, an alert, a new cycle, a
new dataset version, a challenger that beats the champion on the same labeled traffic and is
promoted with no manual step; then a challenger that does not win by the margin and is not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from operate.support import set_operate, write_month
from rich.console import Console
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.demo import DemoContext
from valueloop.demo import operate as chapter
from valueloop.errors import Conflict
from valueloop.learn.tables import ModelVersion
from valueloop.operate.alerts import list_alerts
from valueloop.operate.retrain import retrain
from valueloop.outcomes import audit
from valueloop.outcomes.usecases import detail, get_usecase
from valueloop.store import session


def _aliases(settings: Settings) -> dict[int, list[str]]:
    with session(settings) as s:
        return {m.version: m.aliases for m in s.scalars(select(ModelVersion).order_by(ModelVersion.version))}


def test_the_loop_closes_and_a_challenger_that_does_not_win_is_not_promoted(
        settings: Settings, in_production: Path, tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=200)
    ctx = DemoContext(settings=settings, workspace=tmp_path, console=console, state={"project": in_production})
    chapter.run(ctx)
    shown = console.file.getvalue()
    assert "dataset drift yes" in shown and "alert 1" in shown and "promoted" in shown

    with session(settings) as s:
        usecase = detail(get_usecase(s, "churn"))
        assert usecase.state == "in_production" and [c.number for c in usecase.cycles] == [1, 2]
        assert usecase.cycles[0].decision == "next_cycle" and "trigger drift" in usecase.cycles[0].decision_comment
        step_events = audit.events(s, usecase="churn", action="retrain.step")
        steps = [e.after["step"] for e in step_events]
        actions = [e.action for e in audit.events(s, usecase="churn")]
        accepted = audit.events(s, usecase="churn", action="model.accept")
    assert steps == ["cycle", "ingest", "train", "compare", "accept", "promote", "production"]
    # the policy acted, under the owner's standing authorization; olivia did nothing and is not named
    assert {e.after["performed_as"] for e in step_events} == {"policy:retrain"}
    assert {e.after["authorized_by"]["owner"] for e in step_events} == {"olivia"}
    assert [e.actor for e in accepted][-1] == "policy:retrain"
    assert {"retrain.start", "data.ingest", "model.train", "model.accept", "model.promote",
            "retrain.finish"} <= set(actions)
    assert _aliases(settings) == {1: [], 2: ["champion"]}

    set_operate(settings, chapter.POLICY | {"retrain": chapter.POLICY["retrain"] | {"margin": 0.5}})
    write_month(in_production, 3000, 13, 1)
    second = retrain(settings, "oscar", "churn")
    assert second.status == "awaiting_owner" and second.cycle == 3  # a new cycle, as from production
    assert second.comparison["wins"] is False and "does not beat the champion by the margin 0.5" in second.decision
    assert _aliases(settings) == {1: [], 2: ["champion"], 3: ["challenger"]}
    with session(settings) as s:
        asked = list_alerts(s, "olivia", "churn", status="open")
        assert any(a.rule == "retrain_decision" and "v3 set as challenger, not promoted" in a.message for a in asked)
        assert detail(get_usecase(s, "churn")).state == "in_development"  # until the owner decides


def test_retraining_needs_operations_and_a_declared_trigger(settings: Settings, ingested: Path) -> None:
    from valueloop.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="requires role operations"):
        retrain(settings, "dana", "churn")
    with pytest.raises(Conflict, match="retrain.triggers of 'churn' are manual; trigger drift is not one of them"):
        retrain(settings, "oscar", "churn", "drift")


def test_a_retraining_left_running_blocks_until_it_is_abandoned(settings: Settings, ingested: Path) -> None:
    from datetime import timedelta

    from valueloop.operate.tables import RetrainRequest
    from valueloop.store.models import utcnow

    with session(settings) as s:
        s.add(RetrainRequest(usecase="churn", trigger="manual", requested_by="oscar", status="running",
                             steps=[], created_at=utcnow() - timedelta(minutes=5)))
    with pytest.raises(Conflict, match=r"retraining #1 of 'churn' is still running"):
        retrain(settings, "oscar", "churn")
    with session(settings) as s:
        s.get(RetrainRequest, 1).created_at = utcnow() - timedelta(hours=7)
    set_operate(settings, {"retrain": {"candidates": ["nope"]}})
    second = retrain(settings, "oscar", "churn")  # goes on, and fails on its own bad input
    assert second.status == "failed" and "nope" in second.decision
    with session(settings) as s:
        assert s.get(RetrainRequest, 1).decision.startswith("abandoned: still running after 6:00:00")


def test_a_retraining_that_fails_unexpectedly_ends_failed_and_says_no_more(settings: Settings,
                                                                          in_production: Path) -> None:
    """Any failure, not only valueloop's own errors, ends the request: left ``running`` it would
    block every retraining of the use case for hours. Its text may hold data, so members read
    only the kind of failure; the server log has the rest."""
    from valueloop.operate.tables import RetrainRequest

    log = settings.home / "predictions" / "churn" / "date=2026-01-01"
    log.mkdir(parents=True)
    (log / "part-broken.parquet").write_bytes(b"customer 4711, secret@example.com: not parquet")
    failed = retrain(settings, "oscar", "churn")
    assert failed.status == "failed"
    assert failed.decision.startswith("unexpected ") and "the server log has the details" in failed.decision
    assert "secret@example.com" not in failed.decision
    with session(settings) as s:
        assert s.scalar(select(RetrainRequest.status).where(RetrainRequest.id == failed.id)) == "failed"


def test_two_retrainings_of_one_use_case_cannot_run_at_once(db_settings: Settings, approved_usecase) -> None:
    """The database keeps them apart, not a SELECT that two processes can both pass."""
    from sqlalchemy.exc import IntegrityError

    from valueloop.operate.tables import RetrainRequest

    approved_usecase(db_settings)
    with pytest.raises(IntegrityError), session(db_settings) as s:
        for _ in range(2):
            s.add(RetrainRequest(usecase="churn", trigger="manual", requested_by="oscar", status="running", steps=[]))
            s.flush()
    with session(db_settings) as s:  # finished ones are many
        for status in ("failed", "failed", "promoted", "running"):
            s.add(RetrainRequest(usecase="churn", trigger="manual", requested_by="oscar", status=status, steps=[]))
            s.flush()


def test_a_failed_retraining_exits_with_the_code_of_its_error(settings: Settings, in_production: Path,
                                                               run_cli) -> None:
    """`valueloop retrain` printed "failed" and exited 0; a closed gate is 7, as for every command."""
    from outcomes.support import PHONE, update_as_team

    from valueloop.outcomes.usecases import spec_of

    with session(settings) as s:
        data = spec_of(get_usecase(s, "churn")).model_dump(mode="json", by_alias=True)
    data["privacy"]["columns"].append(PHONE)  # a new personal column closes the DPIA gate until a new decision
    update_as_team(settings, data)
    closed = run_cli(settings, "retrain", "churn", as_user="oscar")
    assert closed.returncode == 7, (closed.stdout, closed.stderr)
    assert "error: retraining #1 of churn failed:" in closed.stderr and "Traceback" not in closed.stderr
    assert "error=GateClosed" in closed.stdout  # the steps it took are still shown
