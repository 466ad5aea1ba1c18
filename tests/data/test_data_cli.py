"""``valueloop data ...`` as users run it: a subprocess, its output and its exit code."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from data_support import files_under, personal, update, approve

from valueloop.config import Settings
from valueloop.data.delta import datasets_root
from valueloop.examples import load_generator
from valueloop.refs import RULE

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _refused(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


def test_ingest_versions_show_diff_and_profile(settings: Settings, churn: Path, run_cli: Cli,
                                               tmp_path: Path) -> None:
    first = run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dave")
    assert first.returncode == 0, first.stderr
    assert "pseudonymize" in first.stdout and "churn@0: 600 rows" in first.stdout
    assert "unique(customer_id)" in first.stdout

    load_generator("churn").write(churn / "data", rows=100, seed=3, period=1)
    update(settings, lambda d: d["sources"][0].update(path="data/customers_period1.csv"))
    second = run_cli(settings, "data", "ingest", "churn", "--mode", "append", "--json", cwd=churn,
                     as_user="dave")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["row_count"] == 700

    listed = json.loads(run_cli(settings, "data", "versions", "churn", "--json", as_user="dana").stdout)
    assert [(v["version"], v["mode"], v["row_count"]) for v in listed] == [(0, "overwrite", 600), (1, "append", 700)]

    shown = run_cli(settings, "data", "show", "churn@0", "--rows", "2", as_user="olivia")
    assert shown.returncode == 0, shown.stderr
    assert "first 2 rows" in shown.stdout and "monthly_charges" in shown.stdout and "DPIA v" in shown.stdout
    rows = json.loads(run_cli(settings, "data", "show", "churn@0", "--json", as_user="olivia").stdout)["rows"]
    assert len(rows) == 5 and "name" not in rows[0]

    diff = json.loads(run_cli(settings, "data", "diff", "churn@0", "churn@1", "--json", as_user="dana").stdout)
    assert diff["rows"] == {"from": 600, "to": 700, "change": 100}
    assert diff["schema"] == [] and diff["columns"]["monthly_charges"]["mean"]["from"] != diff["columns"]["monthly_charges"]["mean"]["to"]

    png, html = tmp_path / "p.png", tmp_path / "p.html"
    profiled = run_cli(settings, "data", "profile", "churn@1", "--png", str(png), "--html", str(html), as_user="dana")
    assert profiled.returncode == 0, profiled.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in html.read_text() and "data:image/png;base64," in html.read_text()


def test_check_prints_the_report_and_fails_on_errors(settings: Settings, churn: Path, run_cli: Cli) -> None:
    good = run_cli(settings, "data", "check", "churn", "--project", str(churn), as_user="dave")
    assert good.returncode == 0, good.stderr
    assert "0 error(s)" in good.stdout
    transform = churn / "transform.sql"
    transform.write_text(transform.read_text().replace("    contract,", "    'weekly' AS contract,"))
    bad = run_cli(settings, "data", "check", "churn", "--project", str(churn), as_user="dave")
    assert bad.returncode == 2 and "allowed_values(contract)" in bad.stdout and "600 of 600" in bad.stdout
    listed = run_cli(settings, "data", "versions", "churn", "--json", as_user="dave")
    assert json.loads(listed.stdout) == []


def test_bad_input_is_a_clear_error_and_writes_nothing(settings: Settings, churn: Path, run_cli: Cli) -> None:
    def ingest() -> subprocess.CompletedProcess[str]:
        return run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dave")

    assert ingest().returncode == 0
    before = files_under(Path(datasets_root(settings).path))

    transform = churn / "transform.sql"
    original = transform.read_text()
    transform.write_text(original.replace("    tenure_months,", "    tenure_month,"))
    _refused(ingest(), 2, "data.transform transform.sql", "tenure_month", "LINE 12")
    transform.write_text(original)

    csv = churn / "data" / "customers.csv"
    csv.rename(csv.with_suffix(".bak"))
    _refused(ingest(), 2, "sources.customers.path: no file matches 'data/customers.csv'")
    csv.with_suffix(".bak").rename(csv)

    _refused(run_cli(settings, "data", "ingest", "churn", "--project", str(churn), "--mode", "upsert",
                     as_user="dave"), 2, "mode: must be append or overwrite, got 'upsert'")
    _refused(run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dana"),
             6, "requires role data_engineer")
    _refused(run_cli(settings, "data", "show", "churn@7", as_user="dave"), 3,
             "has no dataset version 7; versions: 0")
    _refused(run_cli(settings, "data", "diff", "churn@0", "churn@x", as_user="dave"), 2,
             f'dataset: {RULE}, got "churn@x"')

    update(settings, personal("phone", "pseudonymize"))
    _refused(ingest(), 7, "awaits the privacy officer's decision")
    approve(settings)
    _refused(ingest(), 2, "treatment of column(s) phone but no source has such a column")

    assert files_under(Path(datasets_root(settings).path)) == before
    listed = run_cli(settings, "data", "versions", "churn", "--json", as_user="dave")
    assert [v["version"] for v in json.loads(listed.stdout)] == [0]


def test_a_file_not_in_the_default_project_folder_names_the_missing_project(settings: Settings, churn: Path,
                                                                           run_cli: Cli, tmp_path: Path) -> None:
    """Run from another folder without --project, ingest said only that the transform was not there."""
    import shutil

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(churn / "data", elsewhere / "data")  # the export is here, the transform is not
    _refused(run_cli(settings, "data", "ingest", "churn", cwd=elsewhere, as_user="dave"), 2,
             f"data.transform: no file 'transform.sql' in {elsewhere.resolve()}; no --project was given, so the "
             "project folder is the current directory: pass --project DIR")
    named = run_cli(settings, "data", "ingest", "churn", "--project", str(elsewhere), as_user="dave")
    _refused(named, 2, f"data.transform: no file 'transform.sql' in {elsewhere.resolve()}")
    assert "--project DIR" not in named.stderr
