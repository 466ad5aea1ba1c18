"""The AI-system assessment of the DPIA: the EU AI Act's (Regulation (EU) 2024/1689) risk class
of the use case and what that class obliges. The privacy officer decides it with the rest of the
privacy section; the gates that follow from it are in privacy (prohibited), learn/modelcard.py
(high risk) and serving (limited risk's notice)."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from valueloop.durations import Duration


class RiskClass(StrEnum):
    prohibited = "prohibited"  # Art. 5: may not be placed on the market or used
    high = "high"  # Art. 6 and Annex III: documentation, logs, human oversight before use
    limited = "limited"  # Art. 50: people are told they deal with an AI system
    minimal = "minimal"


class AnnexIII(StrEnum):
    """The high-risk areas of Annex III."""

    biometrics = "biometrics"
    critical_infrastructure = "critical_infrastructure"
    education = "education"
    employment = "employment"
    essential_services = "essential_services"  # credit scoring, insurance pricing, public benefits
    law_enforcement = "law_enforcement"
    migration = "migration"
    justice = "justice"


#: Art. 26(6): deployers keep a high-risk system's logs for at least six months (of 30 days)
LEAST_LOG_DAYS = 180
#: a header value is one line of visible characters (a CR or LF would start a forged header)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Oversight(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    who: str = Field(min_length=1, description="who can override or stop the predictions, e.g. the retention team lead")
    how: str = Field(min_length=1, description="how, e.g. a call is made only after a person reviewed the score")


class AiAssessment(BaseModel):
    """The AI Act's view of the use case, part of the DPIA the officer decides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk: RiskClass
    annex_iii: AnnexIII | None = Field(None, description="the Annex III area, for high risk")
    oversight: Oversight | None = Field(None, description="the human-oversight measure")
    transparency_notice: str | None = Field(
        None, max_length=300, description="told to people with every prediction, for limited risk")
    log_retention: Duration | None = Field(
        None, description=f"how long prediction logs are kept, at least {LEAST_LOG_DAYS}d for high risk")

    @field_validator("transparency_notice")
    @classmethod
    def _one_line(cls, notice: str | None) -> str | None:
        if notice is not None and (not notice.strip() or _CONTROL.search(notice)):
            raise ValueError("must be one line of text without control characters (it is sent as an HTTP header)")
        return notice

    @model_validator(mode="after")
    def _by_class(self) -> AiAssessment:
        if self.risk is RiskClass.high:
            if self.annex_iii is None:
                raise ValueError(f"risk high needs annex_iii, the Annex III area: one of {', '.join(AnnexIII)}")
            if self.log_retention is None or self.log_retention.delta < timedelta(days=LEAST_LOG_DAYS):
                raise ValueError(f"risk high needs log_retention of at least {LEAST_LOG_DAYS}d (six months, "
                                 f"AI Act Art. 26(6)); got {self.log_retention or 'none'}")
        elif self.annex_iii is not None:
            raise ValueError(f"annex_iii {self.annex_iii} is a high-risk area; set risk: high, or drop annex_iii")
        if self.risk is RiskClass.limited and self.transparency_notice is None:
            raise ValueError("risk limited needs transparency_notice, the text people are shown with a prediction")
        return self

