"""Bad input on the command line: a clear message, the documented exit code, no traceback, and
nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from outcomes.support import churn_data, db_state, formulated

# (arguments, acting user, exit code, what stderr says); FILE is the valid churn file,
# BAD an invalid one, BROKEN one that is not YAML
CASES = [
    (["usecase", "create", "BAD"], "olivia", 2, [
        "BAD.yaml is invalid (3 problem(s)):",
        '  - kpis[1].target: expected a number, got "high"',
        "  - privacy.columns[2].treatment: Input should be 'drop', 'pseudonymize', 'generalize' or "
        "'keep', got \"blur\"",
        "  - colour: unknown field",
    ]),
    (["usecase", "create", "BROKEN"], "olivia", 2, ["BROKEN.yaml: not valid YAML at line 2, column 8"]),
    (["usecase", "create", "nowhere.yaml"], "olivia", 2, ["use case file nowhere.yaml: no such file"]),
    (["usecase", "create", "FILE"], "zoe", 5, ["error: unknown user 'zoe'; known users: admin, ana, dana"]),
    (["usecase", "create", "FILE"], None, 5, ["error: no acting user: pass --as USER or set VALUELOOP_USER"]),
    (["usecase", "create", "FILE"], "olivia", 4, ["error: use case 'churn' already exists"]),
    (["usecase", "advance", "churn", "in_production"], "olivia", 4, [
        "error: illegal transition formulated → in_production; from formulated the allowed next states "
        "are: draft, privacy_review"]),
    (["usecase", "advance", "churn", "shipped"], "olivia", 2, [
        "error: state: unknown state 'shipped'; states are draft, formulated, privacy_review"]),
    (["usecase", "advance", "churn"], "olivia", 2, ["Missing argument 'state'"]),
    (["usecase", "show", "fraud"], "olivia", 3, ["use case 'fraud' does not exist; `valueloop usecase list` shows yours"]),
    (["privacy", "submit", "churn"], "dave", 6, [
        "error: dave may not submit privacy on use case 'churn': requires role analyst or owner; "
        "dave has data_engineer"]),
    (["privacy", "approve", "churn"], "pia", 4, ["no DPIA of 'churn' awaits a decision (none was submitted)"]),
    (["privacy", "approve", "churn", "-c", "postcode"], "pia", 2, [
        "--condition: expected COLUMN=TREATMENT[:KEY=VALUE,...], got 'postcode'"]),
    (["privacy", "approve", "churn", "-c", "postcode=generalize"], "pia", 2, [
        "generalize of 'postcode' needs exactly one of params.to"]),
    (["usecase", "outcomes", "churn", "--kpi", "recall=high"], "olivia", 2, [
        "--kpi recall: expected a number, got 'high'"]),
    (["usecase", "add-member", "churn", "eve", "boss"], "olivia", 2, [
        "role: unknown role 'boss'; roles are owner, sponsor, analyst"]),
    (["users", "add", "Eve Smith"], "admin", 2, [
        'name: must match the pattern ^[a-z][a-z0-9._-]{0,63}$, got "Eve Smith"']),
    (["users", "add", "mallory", "--admin"], "dana", 6, ["dana may not administer: requires role admin"]),
    (["batch", "churn", "--input", "FILE", "--output", "out.parquet", "--part-rows", "0"], "devon", 2, [
        "error: invalid option(s):", "  - --part-rows: Input should be greater than or equal to 1, got 0"]),
    (["stream", "churn", "--threads", "0", "--batch-size", "-5"], "oscar", 2, [
        "  - --batch-size: Input should be greater than or equal to 1, got -5",
        "  - --threads: Input should be greater than or equal to 1, got 0"]),
]


@pytest.mark.parametrize(("args", "user", "exit_code", "messages"), CASES,
                         ids=[" ".join(c[0]) + f" as {c[1]}" for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(settings, run_cli, tmp_path, args, user, exit_code,
                                                messages):
    formulated(settings)
    files = {"FILE": churn_data(), "BAD": churn_data()}
    files["BAD"]["kpis"][1]["target"] = "high"
    files["BAD"]["privacy"]["columns"][2]["treatment"] = "blur"
    files["BAD"]["colour"] = "blue"
    for name, data in files.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "BROKEN.yaml").write_text("name: churn\n  title: [unclosed\n")
    paths = {name: str(tmp_path / f"{name}.yaml") for name in ("FILE", "BAD", "BROKEN")}
    before = db_state(settings)

    result = run_cli(settings, *(paths.get(a, a) for a in args), as_user=user, cwd=tmp_path)

    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for message in messages:
        assert message in result.stderr
    assert db_state(settings) == before


def test_init_writes_a_file_that_create_accepts_and_never_overwrites(settings, run_cli, refused, tmp_path):
    formulated(settings)  # churn exists: create the init'ed file under another name
    written = run_cli(settings, "init", "project", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    target = Path(tmp_path / "project" / "valueloop.yaml")
    assert target.read_text().startswith("# valueloop use case file")
    refused(run_cli(settings, "init", "project", cwd=tmp_path), 4,
            "project/valueloop.yaml already exist(s); pass --force to overwrite")
    target.write_text(re.sub(r"^name: churn$", "name: churn-b2b", target.read_text(), count=1, flags=re.M))
    created = run_cli(settings, "usecase", "create", str(target), as_user="olivia")
    assert created.returncode == 0, created.stderr
    assert "churn-b2b: Predict customer churn" in created.stdout
    assert run_cli(settings, "init", "project", "--force", cwd=tmp_path).returncode == 0
    assert "name: churn\n" in target.read_text()


#: the read-only commands of one use case
READS = [["runs"], ["models"], ["data", "versions"], ["alerts", "list"], ["kpi", "list"], ["privacy", "show"],
         ["audit"], ["usecase", "show"], ["labels", "list"]]


def test_every_read_asks_who_is_reading_before_it_looks_the_use_case_up(settings, run_cli, refused):
    """runs, models, kpi list and privacy show said whether a use case exists to nobody in
    particular (exit 3), while data versions, alerts list and audit asked who was asking (5)."""
    formulated(settings)
    for words in READS:
        refused(run_cli(settings, *words, "fraud"), 5, "error: no acting user: pass --as USER or set VALUELOOP_USER")
    refused(run_cli(settings, "runs", "fraud", as_user="ghost"), 5, "error: unknown user 'ghost'")
