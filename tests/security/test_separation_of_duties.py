"""Separation of duties, enforced by the service layer: the attacks of issue 14 as a hostile member
would make them. Each must be refused, write nothing, and leave the audit as it was."""

from __future__ import annotations

import pytest
from outcomes.support import add_people, churn_data, churn_spec, db_state, formulated

from valueloop.errors import InvalidInput, PermissionDenied
from valueloop.outcomes import privacy, usecases, users
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.roles import Role
from valueloop.outcomes.spec import parse_spec
from valueloop.store import session


def _refused(settings, error, match, act) -> None:  # type: ignore[no-untyped-def]
    """``act`` is refused with ``error`` and leaves every table as it was."""
    before = db_state(settings)
    with pytest.raises(error, match=match), session(settings) as s:
        act(s)
    assert db_state(settings) == before


def test_an_analyst_cannot_take_over_a_use_case_by_editing_its_file(db_settings):
    """Attack 1: ana names herself owner, data engineer and operations and removes the others."""
    formulated(db_settings)
    data = churn_data()
    data["owner"] = "ana"
    data["members"] |= {"data_engineer": ["ana"], "operations": ["ana"], "analyst": ["ana"]}
    _refused(db_settings, PermissionDenied, r"members: a use case file never changes members.*"
             r"adds ana as owner.*removes olivia as owner.*valueloop usecase add-member",
             lambda s: usecases.update_usecase(s, "ana", parse_spec(data)))


def test_the_file_cannot_name_a_privacy_officer(settings):
    """Attack 4: anyone could create a use case naming themselves its privacy officer."""
    add_people(settings)
    data = churn_data()
    data["members"]["privacy_officer"] = ["olivia"]
    with pytest.raises(InvalidInput, match=r"members: privacy_officer: privacy officers are appointed by "
                                           r"the admin"):
        parse_spec(data)


def test_a_privacy_officer_is_appointed_by_the_admin_and_holds_no_other_role(db_settings):
    formulated(db_settings, submitted=True)
    # pia is appointed globally (add_people does it) and holds no role on churn: she decides
    with session(db_settings) as s:
        assert users.get_user(s, "pia").is_privacy_officer
    # the owner can neither make herself privacy officer nor add the officer in another role
    _refused(db_settings, InvalidInput, "privacy_officer: privacy officers are appointed by the admin",
             lambda s: usecases.add_member(s, "olivia", "churn", "olivia", Role.privacy_officer))
    _refused(db_settings, PermissionDenied, "pia is a privacy officer and may hold no role on a use case",
             lambda s: usecases.add_member(s, "olivia", "churn", "pia", Role.data_engineer))
    # an appointed officer who is a member of a use case decides nothing on it
    with session(db_settings) as s:
        users.appoint(s, "admin", "eve", privacy_officer=True)
    _refused(db_settings, PermissionDenied, "eve may not decide privacy on use case 'churn'.*eve has expert",
             lambda s: privacy.approve(s, "eve", "churn"))
    # only the admin appoints, and never himself; an admin is never a privacy officer
    _refused(db_settings, PermissionDenied, "olivia may not administer",
             lambda s: users.appoint(s, "olivia", "olivia", privacy_officer=True))
    _refused(db_settings, PermissionDenied, "admin may not appoint their own account",
             lambda s: users.appoint(s, "admin", "admin", privacy_officer=True))


def test_a_creator_cannot_become_the_privacy_officer_of_their_use_case(db_settings):
    """An appointed officer who creates a use case is a member of it, so someone else decides."""
    add_people(db_settings)
    data = churn_data()
    data["owner"] = "pia"
    with pytest.raises(PermissionDenied, match="pia is a privacy officer and may hold no role on a use case"):
        with session(db_settings) as s:
            usecases.create_usecase(s, "pia", parse_spec(data))


def test_the_admin_decides_nothing_and_mints_tokens_for_himself_only(db_settings):
    formulated(db_settings, submitted=True)
    _refused(db_settings, PermissionDenied, "admin may not decide privacy",
             lambda s: privacy.approve(s, "admin", "churn"))
    _refused(db_settings, PermissionDenied, "admin may issue tokens for their own account only",
             lambda s: users.create_token(s, "admin", for_user="pia"))
    _refused(db_settings, PermissionDenied, "admin may not give their own account a role on use case 'churn'",
             lambda s: usecases.add_member(s, "admin", "churn", "admin", Role.data_engineer))


def test_fields_that_grant_power_are_changed_only_by_their_owner(db_settings):
    """Attack 4: an analyst switches auto_promote on, or a canary; run_as names someone else."""
    formulated(db_settings)
    policy = {"retrain": {"triggers": ["manual"], "auto_promote": True}}
    _refused(db_settings, PermissionDenied, r"operate\.retrain\.auto_promote: only the owner may change it; "
             "ana has analyst",
             lambda s: usecases.update_usecase(s, "ana", churn_spec(operate=policy)))
    _refused(db_settings, PermissionDenied, r"deploy\.canary: only the owner may change it",
             lambda s: usecases.update_usecase(s, "ana", churn_spec(deploy={"canary": 0.5})))
    job = {"name": "nightly", "cron": "0 2 * * *", "input": "churn@latest", "output": "s.parquet",
           "run_as": "oscar"}
    _refused(db_settings, PermissionDenied, r"batch\[0\]\.run_as: only oscar may schedule a job that runs as "
             "oscar",
             lambda s: usecases.update_usecase(s, "olivia", churn_spec(batch=[job])))
    # the owner may switch auto-promotion on; operations may schedule their own job
    with session(db_settings) as s:
        usecases.update_usecase(s, "olivia", churn_spec(operate=policy))
        usecases.update_usecase(s, "oscar", churn_spec(operate=policy, batch=[job]))
    # ... and an analyst's edit of anything else keeps both
    data = churn_spec(operate=policy, batch=[job]).model_dump(mode="json")
    data["title"] = "Predict customer churn, B2C"
    with session(db_settings) as s:
        usecases.update_usecase(s, "ana", parse_spec(data))
        assert usecases.get_usecase(s, "churn").title == "Predict customer churn, B2C"


def test_a_retraining_schedule_is_set_by_operations(db_settings):
    formulated(db_settings)
    scheduled = {"retrain": {"triggers": ["schedule"], "schedule": "0 3 * * 1"}}
    _refused(db_settings, PermissionDenied, r"operate\.retrain\.triggers: only operations may change it; olivia has owner",
             lambda s: usecases.update_usecase(s, "olivia", churn_spec(operate=scheduled)))
    with session(db_settings) as s:
        usecases.update_usecase(s, "oscar", churn_spec(operate=scheduled))


def test_member_changes_are_their_own_audited_operations_and_reach_the_file(db_settings):
    formulated(db_settings)
    with session(db_settings) as s:
        usecases.add_member(s, "olivia", "churn", "eve", Role.data_scientist)
        stored = usecases.get_usecase(s, "churn").spec
    assert "eve" in stored["members"]["data_scientist"]
    # the file as stored now matches: re-uploading it changes nothing and is not refused
    with session(db_settings) as s:
        usecases.update_usecase(s, "ana", parse_spec(stored))
        trail = [e.action for e in usecases_audit(s)]
    assert trail.count("member.add") == 1


def usecases_audit(s):  # type: ignore[no-untyped-def]
    from valueloop.outcomes import audit

    return audit.events(s, usecase="churn")


def test_nobody_accepts_a_model_they_trained(settings, approved_usecase):
    """The owner who is also a data scientist may train, but not accept her own model."""
    from learn.learn_support import FAST, ingest, set_model

    from valueloop.learn.registry import accept
    from valueloop.learn.training import train

    name, project = approved_usecase(settings)
    set_model(settings, name, candidates=FAST[:1], threshold=0.6)
    ingest(settings, name, project, rows=800)
    with session(settings) as s:
        usecases.add_member(s, "olivia", name, "olivia", Role.data_scientist)
    with session(settings) as s:
        report = train(s, settings, "olivia", name)
    assert report.registered is not None
    version = report.registered.version
    _refused(settings, PermissionDenied, f"olivia may not accept model churn v{version}: olivia trained it",
             lambda s: accept(s, "olivia", name, version, accepted=True, comment="mine"))


def test_the_state_only_moves_for_the_roles_of_the_matrix_after_all(db_settings):
    """The gates of roles.py still hold with the appointed officer: the DPIA flow works."""
    formulated(db_settings, submitted=True)
    with session(db_settings) as s:
        privacy.approve(s, "pia", "churn")
        usecases.advance(s, "olivia", "churn", State.in_development)
        assert usecases.get_usecase(s, "churn").state == State.in_development


@pytest.mark.parametrize("field,value", [
    ("output", "../../../../tmp/owned.parquet"), ("output", "/tmp/owned.parquet"),
    ("output", "delta:../elsewhere"), ("input", "/etc/passwd"), ("input", "../../secrets.csv"),
    ("output", "s3://bucket/x.parquet"),
])
def test_a_scheduled_job_reads_and_writes_only_inside_its_batch_folder(field, value):
    """Attack 3: output paths with ``../`` or absolute paths were written by the server's cron."""
    data = churn_data()
    data["batch"] = [{"name": "nightly", "cron": "0 2 * * *", "input": "churn@latest", "output": "s.parquet",
                      "run_as": "oscar"} | {field: value}]
    with pytest.raises(InvalidInput, match=rf"batch\[0\]\.{field}: must be a relative path inside "
                                           r"<home>/batch/<use case>/"):
        parse_spec(data)


def test_a_symlink_cannot_lead_a_scheduled_job_out_of_its_folder(settings, tmp_path):
    from valueloop.deploy.schedule import _path

    folder = settings.home / "batch" / "churn"
    folder.mkdir(parents=True)
    (folder / "out").symlink_to(tmp_path)
    with pytest.raises(InvalidInput, match="leads outside"):
        _path(settings, "churn", "out/scores.parquet")
    assert _path(settings, "churn", "scores.parquet") == str(folder.resolve() / "scores.parquet")


def test_nobody_acts_as_an_automated_principal_from_the_command_line(settings, run_cli):
    add_people(settings)
    with session(settings) as s:
        users.system_user(s, "policy:retrain")
    refused = run_cli(settings, "usecase", "list", as_user="policy:retrain")
    assert refused.returncode == 5, refused.stderr
    assert "policy:retrain is an automated principal" in refused.stderr
    with pytest.raises(PermissionDenied, match="automated principal and holds no token"), session(settings) as s:
        users.create_token(s, "policy:retrain")
    appointed = run_cli(settings, "users", "appoint", "eve", as_user="admin")
    assert appointed.returncode == 0 and "eve is now a privacy officer" in appointed.stdout
