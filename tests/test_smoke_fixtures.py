from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.store import session


def test_approved_usecase_on_both_databases(db_settings, approved_usecase, run_cli):
    name, project = approved_usecase(db_settings)
    with session(db_settings) as s:
        assert require_privacy_approval(s, name).treatments["postcode"].params == {"prefix": 2}
    assert (project / "valueloop.yaml").is_file()
    result = run_cli(db_settings, "usecase", "show", name, "--json")
    assert result.returncode == 0, result.stderr
    assert '"state": "in_development"' in result.stdout
