"""Outcomes: use cases with KPI targets, roles, lifecycle, the DPIA and its gate, and the audit log."""

from valueloop.outcomes.privacy import require_privacy_approval

__all__ = ["require_privacy_approval"]
