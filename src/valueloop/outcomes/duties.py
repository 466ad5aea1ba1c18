"""Separation of duties for a use case file: what an upload may change, and who may change it.

A file upload never changes members (that is :func:`~valueloop.outcomes.usecases.add_member`'s
job, audited as ``member.add``). Fields that grant power belong to one role each, and a batch job
runs as somebody only if that somebody scheduled it. Everything else is the formulators' (owner,
analyst) to change.
"""

from __future__ import annotations

from typing import Any

from valueloop.errors import PermissionDenied
from valueloop.outcomes.roles import PERMISSIONS, Action, Role
from valueloop.outcomes.spec import Deploy, Operate, UseCaseSpec

#: fields of the file that grant power, each changed only by the holder of its role
POWERS: dict[str, Role] = {
    "operate.retrain.auto_promote": Role.owner,  # a model goes live without the owner's look
    "operate.retrain.margin": Role.owner,        # by how much it must win to do so
    "operate.retrain.rollout": Role.owner,
    "deploy.canary": Role.owner,                 # live traffic to a challenger
    "deploy.shadow": Role.owner,
    "operate.retrain.triggers": Role.operations,  # when the loop retrains is operations' call
    "operate.retrain.schedule": Role.operations,
}
_MEMBERSHIP = ("owner", "sponsor", "members")


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        data = data[key]
    return data


def _plain(spec: UseCaseSpec) -> dict[str, Any]:
    """The file as data, with the optional sections at their defaults, so a section left out and
    one written with its defaults compare equal."""
    data = spec.model_dump(mode="json")
    data["operate"] = data["operate"] or Operate().model_dump(mode="json")
    data["deploy"] = data["deploy"] or Deploy().model_dump(mode="json")
    return data


def _without(data: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy with the given fields (and the membership and batch sections) blanked out."""
    import copy

    data = copy.deepcopy(data)
    for key in (*_MEMBERSHIP, "batch"):
        data.pop(key, None)
    for path in paths:
        *parents, leaf = path.split(".")
        _get(data, ".".join(parents)).pop(leaf) if parents else data.pop(leaf)
    return data


def default_run_as(spec: UseCaseSpec, members: dict[Role, list[str]]) -> str:
    """Whom a batch job without ``run_as`` runs as: the first operations member, else the first
    developer, else the owner."""
    return (members.get(Role.operations) or members.get(Role.developer) or [spec.owner])[0]


def check_membership(members: dict[Role, list[str]], spec: UseCaseSpec) -> None:
    """Refuse a file whose people differ from the stored members, naming each difference."""
    declared: dict[Role, set[str]] = {}
    for user, role in spec.memberships():
        declared.setdefault(role, set()).add(user)
    changes = []
    for role in sorted(set(declared) | set(members)):
        have, want = set(members.get(role, [])), declared.get(role, set())
        if role in (Role.owner, Role.sponsor) and want and want <= have:
            continue  # the file has room for one owner and one sponsor: any stored one will do
        changes += [f"adds {u} as {role}" for u in sorted(want - have)]
        changes += [f"removes {u} as {role}" for u in sorted(have - want)]
    if changes:
        raise PermissionDenied(
            "members: a use case file never changes members; this one " + ", ".join(changes)
            + ". The owner or an admin changes members with `valueloop usecase add-member` and "
            "`remove-member`; the stored file follows (`valueloop usecase show NAME --json`)")


def check_changes(editor: str, held: set[Role], old: UseCaseSpec | None, new: UseCaseSpec,
                  members: dict[Role, list[str]]) -> None:
    """Refuse the first change ``editor`` (holding ``held``) may not make. ``old`` is None when
    the use case is created: its power fields are then compared with the defaults."""
    before = _plain(old if old is not None else new.model_copy(update={"operate": None, "deploy": None}))
    after = _plain(new)
    shown = ", ".join(sorted(held)) or "no role"
    for path, role in POWERS.items():
        if _get(before, path) != _get(after, path) and role not in held:
            who = "the owner" if role is Role.owner else role
            raise PermissionDenied(f"{path}: only {who} may change it; {editor} has {shown}")
    formulates = bool(held & PERMISSIONS[Action.formulate])
    if old is not None and not formulates and _without(before, list(POWERS)) != _without(after, list(POWERS)):
        raise PermissionDenied(f"{editor} may change only the fields of their role in the use case file; "
                               f"anything else requires role analyst or owner; {editor} has {shown}")
    previous = {entry.name: entry for entry in old.batch} if old is not None else {}
    for i, entry in enumerate(new.batch):
        runs_as = entry.run_as or default_run_as(new, members)
        if previous.get(entry.name) != entry and runs_as != editor:
            raise PermissionDenied(
                f"batch[{i}].run_as: only {runs_as} may schedule a job that runs as {runs_as}; "
                f"{editor} may schedule jobs that run as {editor} (run_as: {editor})")
    kept = {entry.name for entry in new.batch}
    for name, entry in previous.items():
        runs_as = entry.run_as or default_run_as(new, members)
        if name not in kept and not formulates and runs_as != editor:
            raise PermissionDenied(f"batch: {editor} may not remove job {name}, which runs as {runs_as}")
