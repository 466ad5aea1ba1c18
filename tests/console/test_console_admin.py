"""The admin page (people, passwords, roles per use case, tokens shown once) and the audit page
(filters, CSV export) in a real browser."""

from __future__ import annotations

import csv
import io

from console_support import Console


def test_the_admin_adds_a_person_sets_a_password_and_issues_and_revokes_a_token(console: Console) -> None:
    visit = console.sign_in("admin", "admin")
    page = visit.page
    visit.shot("inbox")
    visit.follow("Admin", "/admin", "admin")

    page.get_by_label("Name", exact=True).fill("Fay Smith")
    with visit.expecting(422):
        page.get_by_role("button", name="Add the person").click()
        page.locator("#name-problem").wait_for()
    visit.shot("person-refused")
    assert 'name: must match the pattern ^[a-z][a-z0-9._-]{0,63}$, got "Fay Smith"' in page.locator("#name-problem").inner_text()

    page.get_by_label("Name", exact=True).fill("fay")
    page.get_by_label("E-mail").fill("fay@example.com")
    page.get_by_role("button", name="Add the person").click()
    page.wait_for_url(console.url + "/admin")
    page.get_by_label("New password for fay").fill("fay-first-password")
    page.get_by_role("row", name="fay").get_by_role("button", name="Set").click()
    page.wait_for_url(console.url + "/admin")
    visit.shot("person-added")
    fay = next(u for u in page.request.get(console.url + "/admin.json").json()["users"] if u["name"] == "fay")
    assert fay["has_password"] is True

    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create a token for yourself").click()
    page.locator("#new-token").wait_for()
    visit.shot("token-issued")
    secret = page.locator("#new-token").inner_text()
    assert console.api("GET", "/api/me", headers={"Authorization": f"Bearer {secret}"}).json()["name"] == "admin"
    visit.goto("/admin", "token-not-shown-again")
    assert secret not in page.content()

    token = next(t for t in page.request.get(console.url + "/admin.json").json()["tokens"] if t["name"] == "laptop")
    page.get_by_role("button", name=f"Revoke token {token['id']}").click()
    page.wait_for_url(console.url + "/admin")
    visit.shot("token-revoked")
    assert console.api("GET", "/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_the_owner_adds_a_member_and_finds_it_in_the_audit(console: Console) -> None:
    visit = console.sign_in("olivia", "members")
    page = visit.page
    visit.shot("inbox")
    visit.goto("/admin", "tokens-and-roles")
    page.get_by_label("Person", exact=True).first.fill("eve")  # the first team listed: churn
    page.get_by_label("Role", exact=True).first.select_option("analyst")
    page.get_by_role("button", name="Add to churn").click()
    page.wait_for_url(console.url + "/admin")
    visit.shot("member-added")
    assert {"user": "eve", "role": "analyst"} in page.request.get(console.url + "/usecases/churn.json").json()[
        "usecase"]["members"]

    visit.follow("Audit", "/audit", "audit")
    page.get_by_label("Use case").select_option("churn")
    page.get_by_label("Action (prefix)").fill("member.")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(console.url + "/audit?*")
    visit.shot("audit-filtered")
    rows = page.locator("table.audit tbody tr")
    assert rows.count() == 1 and "member.add" in rows.first.inner_text()

    export = page.request.get(console.url + "/audit.csv?usecase=churn&action=member.")
    assert export.status == 200 and export.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(export.text())))
    assert [(r["actor"], r["action"], r["object_id"]) for r in records] == [("olivia", "member.add", "eve:analyst")]

    with visit.expecting(422):
        visit.goto("/audit?since=yesterday", "audit-refused")
    assert "since" in page.locator("#since-problem").inner_text()
