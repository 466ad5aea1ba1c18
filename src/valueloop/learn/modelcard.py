"""Model cards: the technical documentation of a model version, from its lineage.

The sections follow "Model Cards for Model Reporting" (Mitchell et al., 2019) and the AI Act's
documentation items (Annex IV). A card's digest covers every statement read from the metadata
database: a change of any of them (the limitations, the DPIA's assessment, the monitoring plan,
the acceptance) gives another digest, and the owner's sign-off, bound to the digest it signed,
no longer holds. The per-segment metrics and calibration come from the run's evaluation, which
the run id in the digest names and which never changes.

A high-risk use case enters ``in_production`` only through :func:`require_production_ready`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import GateClosed, InvalidInput, PermissionDenied
from valueloop.learn import tracking
from valueloop.learn.model_tests import TestResult
from valueloop.learn.versions import kpi_checks, version_row
from valueloop.learn.tables import ModelVersion, TrainingRun
from valueloop.learn.views import KpiCheck
from valueloop.outcomes import audit
from valueloop.durations import Duration
from valueloop.outcomes.ai import AiAssessment, RiskClass
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import digest_of
from valueloop.outcomes.usecases import get_usecase, spec_of
from valueloop.outcomes.users import get_user
from valueloop.store.models import UseCase, utcnow

#: where the card's documents are kept among the training run's MLflow artifacts
ARTIFACT_DIR = "model_card"
LIMITATIONS_CHARS = 20_000


class CardData(BaseModel):
    dataset_version: int
    rows: int
    sources: dict[str, str]  # name -> digest of what was read
    transform_hash: str
    dpia_version: int
    treatments: dict[str, str]  # personal column -> treatment applied


class CandidateLine(BaseModel):
    name: str
    kind: str
    status: str
    primary: float | None


class CardTraining(BaseModel):
    run_id: str
    candidate: str
    kind: str
    params: dict[str, Any]
    seed: int
    split: dict[str, Any]
    git_commit: str | None
    trained_by: str
    candidates: list[CandidateLine]


class CardEvaluation(BaseModel):
    primary_metric: str
    threshold: float
    metrics: dict[str, Any]
    kpis: list[KpiCheck]
    tests: list[TestResult]


class HistoryLine(BaseModel):
    version: int
    candidate: str
    dataset_version: int
    acceptance: str
    accepted_by: str | None
    created_at: datetime


class ModelCard(BaseModel):
    """Every statement of the card; its digest is what the owner signs."""

    usecase: str
    title: str
    version: int
    owner: str
    business_goal: str
    purpose: str
    data: CardData
    training: CardTraining
    evaluation: CardEvaluation
    limitations: str | None
    ai: AiAssessment | None
    monitoring: dict[str, Any] | None
    acceptance: str
    accepted_by: str | None
    acceptance_comment: str | None
    history: list[HistoryLine]

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))


class CardState(BaseModel):
    """A card as it stands now, and whether the owner's sign-off holds for it."""

    card: ModelCard
    digest: str
    signed_by: str | None
    signed_at: datetime | None
    signed_digest: str | None
    #: the owner signed this very content
    signed: bool


class ModelCardView(CardState):
    """The state with the card's documents."""

    markdown: str
    html: str


def build(session: Session, usecase: UseCase, row: ModelVersion) -> ModelCard:
    """The card's statements from the metadata database."""
    from valueloop.data.service import get_version

    spec = spec_of(usecase)
    run = session.scalar(select(TrainingRun).where(TrainingRun.run_id == row.run_id))
    assert run is not None, f"model version {row.version} of {usecase.name} has no training run"
    siblings = session.scalars(select(TrainingRun).where(TrainingRun.training_id == run.training_id)
                               .order_by(TrainingRun.id)).all()
    dataset = get_version(session, usecase.name, row.dataset_version)
    dpia = next(a for a in usecase.assessments if a.version == row.dpia_version)
    decided = require_privacy_approval(session, usecase)  # the assessment in force now
    earlier = session.execute(select(ModelVersion, TrainingRun.candidate)
                              .outerjoin(TrainingRun, TrainingRun.run_id == ModelVersion.run_id)
                              .where(ModelVersion.usecase == usecase.name, ModelVersion.version <= row.version)
                              .order_by(ModelVersion.version)).all()
    primary = spec.model.primary_metric
    return ModelCard(
        usecase=usecase.name, title=usecase.title, version=row.version, owner=spec.owner,
        business_goal=spec.business_goal, purpose=spec.privacy.purpose,
        data=CardData(dataset_version=dataset.version, rows=dataset.row_count,
                      sources={n: str(f.get("digest", "")) for n, f in dataset.source_fingerprints.items()},
                      transform_hash=dataset.transform_hash, dpia_version=dpia.version,
                      treatments={c: str(t.get("treatment")) for c, t in dataset.treatments.items()}),
        training=CardTraining(
            run_id=run.run_id, candidate=run.candidate["name"], kind=run.candidate["kind"], params=run.params,
            seed=run.seed, split=run.split, git_commit=run.git_commit, trained_by=run.actor,
            candidates=[CandidateLine(name=r.candidate["name"], kind=r.candidate["kind"], status=r.status,
                                      primary=r.metrics.get(primary)) for r in siblings]),
        evaluation=CardEvaluation(primary_metric=primary, threshold=spec.model.threshold, metrics=run.metrics,
                                  kpis=kpi_checks(usecase, run.metrics),
                                  tests=[TestResult.model_validate(t) for t in row.test_report["tests"]]),
        limitations=row.card_limitations, ai=decided.content.ai,
        monitoring=spec.operate.model_dump(mode="json") if spec.operate else None,
        acceptance=row.acceptance, accepted_by=row.accepted_by, acceptance_comment=row.acceptance_comment,
        history=[HistoryLine(version=r.version, candidate=(candidate or {}).get("name", ""),
                             dataset_version=r.dataset_version, acceptance=r.acceptance, accepted_by=r.accepted_by,
                             created_at=r.created_at)
                 for r, candidate in earlier],
    )


def _view(settings: Settings, row: ModelVersion, card: ModelCard) -> ModelCardView:
    from valueloop.learn.card_render import render

    tracking.configure(settings)  # the artifact store's endpoint, for a card made outside the server
    evaluated = tracking.evaluation(settings.mlflow_uri, card.training.run_id)
    digest = card.digest()
    markdown, html = render(card, digest, evaluated, row)
    return ModelCardView(card=card, digest=digest, signed_by=row.card_signed_by, signed_at=row.card_signed_at,
                         signed_digest=row.card_signed_digest, signed=row.card_signed_digest == digest,
                         markdown=markdown, html=html)


def _store(session: Session, settings: Settings, actor: str, usecase: UseCase, row: ModelVersion,
           view: ModelCardView) -> None:
    """Keep the documents with the version's run in MLflow, and the digest on its row."""
    client = tracking.client(settings)
    for name, text in (("card.md", view.markdown), ("card.html", view.html),
                       ("card.json", view.card.model_dump_json(indent=2))):
        client.log_text(view.card.training.run_id, text, f"{ARTIFACT_DIR}/{name}")
    if row.card_digest != view.digest:
        before = {"card_digest": row.card_digest}
        row.card_digest = view.digest
        session.flush()
        audit.record(session, actor, "modelcard.generate", "model_version", f"{usecase.name}/v{row.version}",
                     usecase=usecase.name, before=before,
                     after={"card_digest": view.digest, "signed": view.signed})


def _read(session: Session, actor: str | None, name: str, version: int) -> tuple[ModelVersion, ModelCard]:
    """A version's row and its card as it stands now, for a member of the use case."""
    usecase = get_usecase(session, name)
    require(session, get_user(session, actor), Action.view, usecase)
    row = version_row(session, usecase.name, version)
    return row, build(session, usecase, row)


def show(session: Session, settings: Settings, actor: str | None, name: str, version: int) -> ModelCardView:
    """The card as it stands now, with its documents: read, not stored."""
    return _view(settings, *_read(session, actor, name, version))


def current_digest(session: Session, actor: str | None, name: str, version: int) -> str:
    """The digest a sign-off would be bound to now, without rendering the documents: what a form
    built from an older card is told apart by."""
    return _read(session, actor, name, version)[1].digest()


def generate(session: Session, settings: Settings, actor: str | None, name: str, version: int,
             limitations: str | None = None) -> ModelCardView:
    """Generate the card of a model version and store it with the version; new limitations (the
    data scientist's) are recorded first, so the card states them."""
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.view, usecase)
    row = version_row(session, usecase.name, version)
    if limitations is not None and limitations != row.card_limitations:
        require(session, acting, Action.train, usecase)
        if not limitations.strip() or len(limitations) > LIMITATIONS_CHARS:
            raise InvalidInput(f"limitations: {len(limitations)} characters; the known limitations and "
                               f"failure cases are written out, 1 to {LIMITATIONS_CHARS} characters")
        before = {"limitations": row.card_limitations}
        row.card_limitations = limitations
        session.flush()
        audit.record(session, acting.name, "modelcard.limitations", "model_version",
                     f"{usecase.name}/v{row.version}", usecase=usecase.name, before=before,
                     after={"limitations": limitations})
    view = _view(settings, row, build(session, usecase, row))
    _store(session, settings, acting.name, usecase, row, view)
    return view


def sign(session: Session, settings: Settings, actor: str | None, name: str, version: int) -> ModelCardView:
    """The owner signs the card as it stands now: the sign-off holds for this digest only."""
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.sign_model_card, usecase)
    if acting.is_system:
        raise PermissionDenied(f"{acting.name} may not sign a model card: the owner vouches for it in person")
    row = version_row(session, usecase.name, version)
    view = _view(settings, row, build(session, usecase, row))
    _store(session, settings, acting.name, usecase, row, view)
    before = {"signed_digest": row.card_signed_digest, "by": row.card_signed_by}
    row.card_signed_digest, row.card_signed_by, row.card_signed_at = view.digest, acting.name, utcnow()
    session.flush()
    audit.record(session, acting.name, "modelcard.sign", "model_version", f"{usecase.name}/v{row.version}",
                 usecase=usecase.name, before=before, after={"signed_digest": view.digest, "by": acting.name})
    return view.model_copy(update={"signed_by": acting.name, "signed_at": row.card_signed_at,
                                   "signed_digest": view.digest, "signed": True})


def _log_retention_problem(ai: AiAssessment, treatments: dict[str, Any],
                           columns: dict[str, Duration | str]) -> str | None:
    """Why the prediction log cannot be kept as long as the officer set, if it cannot: it holds
    every personal column that is not dropped, and is kept no longer than the shortest of them."""
    assert ai.log_retention is not None  # a high-risk assessment has one
    held = [c for c, t in treatments.items() if t.treatment != "drop" and c in columns]
    short = sorted(c for c in held
                   if not isinstance(columns[c], Duration) or columns[c].delta < ai.log_retention.delta)
    if not short:
        return None
    return (f"the prediction log holds personal column(s) {', '.join(short)}, whose declared retention "
            f"({', '.join(columns[c] for c in short)}) is shorter than the {ai.log_retention} the officer set "
            "for logs (privacy.ai.log_retention)")


def _high_risk(usecase: UseCase) -> bool:
    """Whether the newest DPIA version declares the use case high-risk (decided or not)."""
    newest = usecase.assessments[-1].content.get("ai") if usecase.assessments else None
    return bool(newest) and newest["risk"] == RiskClass.high


def _unsigned(session: Session, usecase: UseCase, row: ModelVersion) -> str | None:
    """Why the version's card does not hold the owner's sign-off as it stands, if it does not."""
    command = f"`valueloop modelcard {usecase.name} {row.version} --sign`, by {spec_of(usecase).owner}"
    if row.card_signed_digest is None:
        return f"v{row.version}'s model card is not signed by the owner ({command})"
    if (now := build(session, usecase, row).digest()) != row.card_signed_digest:
        return (f"v{row.version}'s model card changed since {row.card_signed_by} signed it (signed "
                f"{row.card_signed_digest[:12]}…, now {now[:12]}…): the owner signs it again ({command})")
    return None


def require_signed_champion(session: Session, usecase: UseCase, row: ModelVersion) -> None:
    """A high-risk use case in production takes a new champion only with its card signed."""
    if State(usecase.state) is State.in_production and _high_risk(usecase) and \
            (problem := _unsigned(session, usecase, row)):
        raise GateClosed(f"use case '{usecase.name}' is high-risk AI in production: the champion's card "
                         f"must be signed first; {problem}")


def require_production_ready(session: Session, usecase: UseCase) -> None:
    """A high-risk use case enters production with its oversight named, logs kept long enough,
    and the champion's model card signed by the owner as it stands now (AI Act Art. 11, 14, 26)."""
    if not _high_risk(usecase):
        return
    decided = require_privacy_approval(session, usecase)  # a high risk declared is decided first
    ai = decided.content.ai
    assert ai is not None
    missing = []
    if ai.oversight is None:
        missing.append("privacy.ai.oversight does not name who can override or stop predictions, and how")
    columns = {c.column: c.retention for c in decided.content.columns}
    if problem := _log_retention_problem(ai, decided.treatments, columns):
        missing.append(problem)
    rows = session.scalars(select(ModelVersion).where(ModelVersion.usecase == usecase.name)).all()
    champion = next((r for r in rows if "champion" in r.aliases), None)
    if champion is None:
        missing.append("no model version is champion")
    elif problem := _unsigned(session, usecase, champion):
        missing.append(f"the champion {problem}")
    if missing:
        raise GateClosed(f"use case '{usecase.name}' is high-risk AI (Annex III: {ai.annex_iii}) and cannot "
                         "enter in_production: " + "; ".join(missing))
