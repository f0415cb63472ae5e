"""What a case page and a case answer cost in SQL statements, counted on the app's engine.

Every statement the request sends is counted (on SQLite that includes its BEGIN), from
the login lookup to the last row the page shows. The pages and answers are also read
for what those statements brought, so a page that stopped loading something cannot pass
by being cheaper.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.conftest import web_login
from tests.factories import make_case, put_delivery, upload

ADDRESS = {
    "recipient": "李经办",
    "phone": "13912345678",
    "province": "江苏省",
    "city": "常州市",
    "district": "武进区",
    "detail": "湖塘镇人民中路 88 号",
}


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent on `engine` inside the block, in order, except the
    catalogue's freshness check.

    A process compares its catalogue with the database at most once a second, in
    whichever request is due (portal.catalogue.cache): a cost of the second, not of a
    page. It is left out of the list, and checked to be at most that one statement.
    """
    seen: list[str] = []
    checks: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        (checks if "FROM catalogue_version" in statement else seen).append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert len(checks) <= 1, checks


def accepted_with_delivery(client, auth) -> tuple[str, dict]:
    """An accepted case with its required files, a timeline and a delivery address."""
    made = make_case(client, auth, "accepted", express=True)
    answer = put_delivery(client, auth, made["case_no"], {"method": "express", "address": ADDRESS})
    assert answer.status_code == 200, answer.text
    return made["case_no"], made["item"]


def test_the_logged_in_case_page_takes_at_most_five_statements(client, person, auth, db):
    case_no, item = accepted_with_delivery(client, auth)
    web_login(client, person)
    # A page served before, as in a running portal: the catalogue is then in memory.
    assert client.get(f"/cases/{case_no}").status_code == 200
    with statements(db.engine) as seen:
        page = client.get(f"/cases/{case_no}")
    assert page.status_code == 200
    # What the statements had to bring: the case, its timeline, its delivery (an accepted
    # case lists no files; the draft's test below reads those).
    assert case_no in page.text
    assert "已受理" in page.text
    assert "李经办" in page.text and "湖塘镇人民中路 88 号" in page.text
    assert item["name"] in page.text
    assert len(seen) <= 5, "\n".join(seen)


def test_more_files_and_timeline_entries_cost_no_more_statements(client, person, auth, db):
    made = make_case(client, auth, "draft")
    case_no, material = made["case_no"], made["item"]["materials"][0]["code"]
    web_login(client, person)
    assert client.get(f"/cases/{case_no}").status_code == 200
    with statements(db.engine) as before:
        assert client.get(f"/cases/{case_no}").status_code == 200
    for n in range(3):  # each upload adds a file, and a timeline entry where one is kept
        assert upload(client, auth, case_no, material, name=f"more-{n}.pdf").status_code == 201
    with statements(db.engine) as after:
        page = client.get(f"/cases/{case_no}")
    assert all(f"more-{n}.pdf" in page.text for n in range(3))
    assert len(after) == len(before), "\n".join(after)


def test_the_case_answer_takes_at_most_five_statements(client, auth, db):
    """The API's bound is the page's: its bearer token finds the login session and its
    account in one statement (the API shows no unread count); the answer itself needs
    the same rows as the page (case, timeline, files with the one-to-one rows)."""
    case_no, _ = accepted_with_delivery(client, auth)
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).status_code == 200
    with statements(db.engine) as seen:
        answer = client.get(f"/api/v1/cases/{case_no}", headers=auth)
    assert answer.status_code == 200
    case = answer.json()
    assert case["status"] == "accepted"
    assert any(e["type"] == "case.accepted" for e in case["timeline"])
    assert any(m["files"] for m in case["materials"])
    assert case["delivery"]["method"] == "express"
    assert case["delivery"]["address"]["recipient"] == "李经办"
    assert case["correction"] is None and case["licence"] is None and case["rating"] is None
    assert len(seen) <= 5, "\n".join(seen)
