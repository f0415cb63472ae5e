"""The procedure after submission (protocol v1.1): 补正 after the formal submission, the clock.

Driven through HTTP only: signed bureau callbacks in, the citizen's API and pages out.
"""

from __future__ import annotations

from datetime import date, timedelta

from portal.clock import add_working_days, is_working_day, today_cst, working_days_left
from tests.conftest import PDF_BYTES, csrf_of, web_login
from tests.factories import (
    cst_at,
    envelope,
    request_correction,
    send,
    status,
    upload,
)
from tests.factories import sent_data as events

# --- 补正 after the formal submission ---------------------------------------------------


def test_correction_request_names_materials_and_only_those_change(client, auth, formal, db):
    case_no, named, other = formal["case_no"], formal["named"], formal["other"]
    due = add_working_days(today_cst(), 10).isoformat()
    assert request_correction(client, case_no, named["code"], due=due).status_code == 200
    case = status(client, auth, case_no)
    assert case["status"] == "correction_required" and case["status_label"] == "待补正"
    assert case["correction"]["comment"] == "材料不符合法定形式"
    assert case["correction"]["materials"] == [{"code": named["code"], "comment": "请加盖公章"}]
    assert case["correction"]["due_date"] == due
    assert case["correction"]["ask_by"] == add_working_days(today_cst(), 5).isoformat()
    assert case["correction"]["late"] is False
    by_code = {m["code"]: m for m in case["materials"]}
    assert by_code[named["code"]]["comment"] == "请加盖公章"
    assert case["timeline"][0]["type"] == "correction.requested"

    # Another material, and the form, stay as submitted: 409, nothing kept.
    refused = upload(client, auth, case_no, other["code"])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_named_for_correction"
    kept_id = by_code[other["code"]]["files"][0]["id"]
    gone = client.delete(
        f"/api/v1/cases/{case_no}/materials/{other['code']}/files/{kept_id}", headers=auth
    )
    assert gone.status_code == 409
    patch = client.patch(f"/api/v1/cases/{case_no}", json={"form": {}}, headers=auth)
    assert patch.status_code == 409
    after = status(client, auth, case_no)
    assert {m["code"]: len(m["files"]) for m in after["materials"]} == {
        m["code"]: len(m["files"]) for m in case["materials"]
    }

    # Handing in without a new file for the named material: 422, still 待补正.
    missing = client.post(f"/api/v1/cases/{case_no}/correction", headers=auth)
    assert missing.status_code == 422
    assert f"materials.{named['code']}" in missing.json()["error"]["fields"]
    assert status(client, auth, case_no)["status"] == "correction_required"
    assert events(db, "case.corrected", case_no) == []

    # A new file for the named material, then hand in: case.corrected, back to submitted.
    assert upload(client, auth, case_no, named["code"], PDF_BYTES + b"%seal").status_code == 201
    done = client.post(f"/api/v1/cases/{case_no}/correction", headers=auth)
    assert done.status_code == 202, done.text
    assert done.json()["status"] == "submitted" and done.json()["correction"] is None
    [sent] = events(db, "case.corrected", case_no)
    assert sent["round"] == 1
    assert [m["code"] for m in sent["materials"]] == [named["code"]]
    assert len(sent["materials"][0]["files"]) == 2  # the kept one and the new one
    submitted = events(db, "case.submitted", case_no)[0]
    assert sent["form"] == submitted["form"]
    assert sent["applicant"] == submitted["applicant"]
    # Its files were PUT before it (blobs first): the outbox names them.
    assert client.post(f"/api/v1/cases/{case_no}/correction", headers=auth).status_code == 409

    # A second request, a second round.
    assert request_correction(client, case_no, named["code"]).status_code == 200
    assert upload(client, auth, case_no, named["code"], PDF_BYTES + b"%again").status_code == 201
    assert client.post(f"/api/v1/cases/{case_no}/correction", headers=auth).status_code == 202
    assert [e["round"] for e in events(db, "case.corrected", case_no)] == [1, 2]


def test_correction_blobs_go_before_the_event(client, auth, formal, db):
    import json

    from sqlalchemy import select

    from portal.exchange.models import OutboxMessage

    case_no, named = formal["case_no"], formal["named"]
    request_correction(client, case_no, named["code"])
    upload(client, auth, case_no, named["code"], PDF_BYTES + b"%blob")
    client.post(f"/api/v1/cases/{case_no}/correction", headers=auth)
    with db.session() as session:
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "case.corrected")
        ).one()
        data = json.loads(message.payload)["data"]
        hashes = {f["sha256"] for f in data["materials"][0]["files"]}
        assert hashes <= set(message.blobs or [])


def test_correction_request_fits_submitted_only_and_is_checked(client, auth, formal):
    case_no, named = formal["case_no"], formal["named"]
    # No material named, or one the item does not have: 422, nothing changes.
    empty = envelope(case_no, "correction.requested", {"comment": "x", "materials": []})
    assert send(client, empty).status_code == 422
    unknown = envelope(
        case_no, "correction.requested", {"materials": [{"code": "NOPE", "comment": "x"}]}
    )
    assert send(client, unknown).status_code == 422
    assert status(client, auth, case_no)["status"] == "submitted"
    assert request_correction(client, case_no, named["code"]).status_code == 200
    # Not from correction_required, nor from accepted.
    assert request_correction(client, case_no, named["code"]).status_code == 409
    accepted = envelope(case_no, "case.accepted", {"acceptance_no": "SL-9"})
    assert send(client, accepted).status_code == 409
    assert status(client, auth, case_no)["status"] == "correction_required"


def test_late_request_says_the_application_counted_as_accepted(client, auth, person, formal):
    case_no, named = formal["case_no"], formal["named"]
    ask_by = add_working_days(today_cst(), 5)
    late = request_correction(client, case_no, named["code"], day=ask_by + timedelta(days=1))
    assert late.status_code == 200  # still processed
    assert status(client, auth, case_no)["correction"]["late"] is True
    web_login(client, person)
    page = client.get(f"/cases/{case_no}").text
    assert "待补正" in page and "请补正以下材料（一次性告知）" in page
    assert "第三十二条" in page and "即为受理" in page
    assert f"{ask_by.year}年{ask_by.month}月{ask_by.day}日" in page


def test_correction_on_the_pages_with_a_check_step(client, auth, person, formal, db):
    case_no, named, other = formal["case_no"], formal["named"], formal["other"]
    request_correction(client, case_no, named["code"])
    web_login(client, person)
    page = client.get(f"/cases/{case_no}")
    assert "请加盖公章" in page.text and "材料不符合法定形式" in page.text
    assert "正式提交后第 5 个工作日" in page.text
    assert "第三十二条" not in page.text  # asked in time
    assert "下一步：核对并提交补正" in page.text
    # A material not named: a clear message, nothing kept.
    refused = client.post(
        f"/cases/{case_no}/materials/{other['code']}/files",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("x.pdf", PDF_BYTES + b"%x", "application/pdf")},
        follow_redirects=False,
    )
    assert refused.status_code == 409 and "不需要补正" in refused.text
    # The check page refuses to hand in before a new file is there.
    review = client.get(f"/cases/{case_no}/correction")
    assert "核对补正材料" in review.text and "还没有上传补正后的新文件" in review.text
    early = client.post(
        f"/cases/{case_no}/correction",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert early.status_code == 422 and "还有要求补正的材料没有上传新文件" in early.text
    uploaded = client.post(
        f"/cases/{case_no}/materials/{named['code']}/files",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("盖章.pdf", PDF_BYTES + b"%seal", "application/pdf")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    review = client.get(f"/cases/{case_no}/correction")
    assert "盖章.pdf" in review.text and "还没有上传补正后的新文件" not in review.text
    done = client.post(
        f"/cases/{case_no}/correction",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert len(events(db, "case.corrected", case_no)) == 1
    assert "提交补正材料" in client.get(f"/cases/{case_no}").text  # on the timeline


def test_correction_required_can_be_withdrawn(client, auth, formal, db):
    case_no = formal["case_no"]
    request_correction(client, case_no, formal["named"]["code"])
    response = client.post(
        f"/api/v1/cases/{case_no}/withdrawal", json={"reason": "不办了"}, headers=auth
    )
    assert response.status_code == 200 and response.json()["status"] == "withdrawn"
    assert len(events(db, "case.withdrawn", case_no)) == 1


# --- the clock -----------------------------------------------------------------------------


def working_day_on_or_after(day: date) -> date:
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def accept(client, case_no, day: date, due: str | None = None):
    data = {"acceptance_no": "SL-1"} | ({"due_date": due} if due else {})
    assert send(client, envelope(case_no, "case.accepted", data, occurred_at=cst_at(day))).json()


def clock_event(client, case_no, type_, data, day: date):
    return send(client, envelope(case_no, type_, data, occurred_at=cst_at(day)))


SUSPEND = {"reason_code": "expert_review", "reason": "组织专家评审", "expected_days": 5}


def test_suspension_moves_the_due_date_by_the_working_days_suspended(client, auth, formal):
    case_no = formal["case_no"]
    accepted_on = today_cst()
    accept(client, case_no, accepted_on)
    before = status(client, auth, case_no)
    assert before["clock"] == {
        "running": True,
        "suspended_since": None,
        "reason_code": None,
        "reason": None,
        "expected_days": None,
    }
    due = date.fromisoformat(before["due_date"])
    # Suspended on a Friday (a working one), resumed the Tuesday after.
    friday = working_day_on_or_after(accepted_on + timedelta(days=1))
    while friday.weekday() != 4 or not is_working_day(friday):
        friday = working_day_on_or_after(friday + timedelta(days=1))
    resumed_on = friday + timedelta(days=4)
    assert clock_event(client, case_no, "clock.suspended", SUSPEND, friday).status_code == 200
    during = status(client, auth, case_no)
    assert during["status"] == "accepted"
    assert during["clock"]["running"] is False
    assert during["clock"]["reason_code"] == "expert_review"
    assert during["clock"]["reason"] == "组织专家评审"
    assert during["clock"]["expected_days"] == 5
    assert during["clock"]["suspended_since"].startswith(friday.isoformat())
    assert during["due_date"] == due.isoformat()
    # Twice: 409, nothing changes.
    again = clock_event(client, case_no, "clock.suspended", SUSPEND, friday)
    assert again.status_code == 409
    assert status(client, auth, case_no)["clock"] == during["clock"]

    assert clock_event(client, case_no, "clock.resumed", {}, resumed_on).status_code == 200
    after = status(client, auth, case_no)
    suspended = sum(
        is_working_day(friday + timedelta(days=i)) for i in range((resumed_on - friday).days)
    )
    assert after["due_date"] == add_working_days(due, suspended).isoformat()
    assert after["clock"]["running"] is True and after["clock"]["suspended_since"] is None
    # Resume while running: 409, the due date stays.
    assert clock_event(client, case_no, "clock.resumed", {}, resumed_on).status_code == 409
    assert status(client, auth, case_no)["due_date"] == after["due_date"]
    types = [e["type"] for e in after["timeline"]]
    assert types.count("clock.suspended") == 1 and types.count("clock.resumed") == 1


def test_countdown_stands_still_while_suspended(client, auth, person, formal):
    case_no = formal["case_no"]
    accepted_on = today_cst() - timedelta(days=20)
    accept(client, case_no, accepted_on, due=(today_cst() + timedelta(days=60)).isoformat())
    suspended_on = working_day_on_or_after(accepted_on + timedelta(days=1))
    assert clock_event(client, case_no, "clock.suspended", SUSPEND, suspended_on).json()
    due = date.fromisoformat(status(client, auth, case_no)["due_date"])
    web_login(client, person)
    page = client.get(f"/cases/{case_no}").text
    assert "计时暂停（专家评审）" in page and "组织专家评审" in page
    assert "预计 5 个工作日" in page
    # Left as it was on the day the clock stopped, not as of today.
    left = working_days_left(suspended_on, due)
    assert f"还剩 {left} 个工作日" in page and "暂停计时中" in page


def test_extension_must_be_later_and_a_decision_ends_a_suspension(client, auth, formal):
    case_no = formal["case_no"]
    today = today_cst()
    accept(client, case_no, today)
    due = date.fromisoformat(status(client, auth, case_no)["due_date"])
    not_later = {"due_date": due.isoformat(), "reason": "情况复杂"}
    assert clock_event(client, case_no, "deadline.extended", not_later, today).status_code == 409
    assert status(client, auth, case_no)["due_date"] == due.isoformat()
    later = (due + timedelta(days=15)).isoformat()
    extended = {"due_date": later, "reason": "情况复杂，经负责人批准延长十日"}
    assert clock_event(client, case_no, "deadline.extended", extended, today).status_code == 200
    assert status(client, auth, case_no)["due_date"] == later

    start = working_day_on_or_after(today + timedelta(days=1))
    assert clock_event(client, case_no, "clock.suspended", SUSPEND, start).status_code == 200
    decided_on = start + timedelta(days=7)
    licence = {
        "name": "许可证",
        "number": "XK-1",
        "valid_from": decided_on.isoformat(),
        "filename": "licence.pdf",
        "content_type": "application/pdf",
        "sha256": "a" * 64,
    }
    approved = clock_event(
        client, case_no, "case.approved", {"decision_no": "JD-1", "licence": licence}, decided_on
    )
    assert approved.status_code == 200
    case = status(client, auth, case_no)
    assert case["status"] == "approved" and case["clock"]["suspended_since"] is None
    suspended = sum(is_working_day(start + timedelta(days=i)) for i in range(7))
    assert case["due_date"] == add_working_days(date.fromisoformat(later), suspended).isoformat()


def test_clock_events_fit_accepted_only(client, auth, formal):
    case_no, today = formal["case_no"], today_cst()
    for type_, data in [
        ("clock.suspended", SUSPEND),
        ("clock.resumed", {}),
        ("deadline.extended", {"due_date": "2099-01-01", "reason": "x"}),
    ]:
        assert clock_event(client, case_no, type_, data, today).status_code == 409
    bad = dict(SUSPEND, reason_code="lunch")
    assert clock_event(client, case_no, "clock.suspended", bad, today).status_code == 422
    case = status(client, auth, case_no)
    assert case["status"] == "submitted" and case["clock"] is None


def test_resumed_portal_due_date_keeps_its_basis(client, auth, formal, db):
    from portal.cases.models import Case

    case_no = formal["case_no"]
    today = today_cst()
    accept(client, case_no, today)
    start = working_day_on_or_after(today + timedelta(days=1))
    clock_event(client, case_no, "clock.suspended", SUSPEND, start)
    clock_event(client, case_no, "clock.resumed", {}, start + timedelta(days=3))
    case = status(client, auth, case_no)
    with db.session() as session:
        row = session.query(Case).filter_by(case_no=case_no).one()
        basis = row.due_basis
    # `portal calendar load` recomputes add_working_days(start, days): the same date.
    assert (
        add_working_days(date.fromisoformat(basis["start"]), basis["days"]).isoformat()
        == (case["due_date"])
    )
    extended = {"due_date": "2099-01-04", "reason": "延期"}
    clock_event(client, case_no, "deadline.extended", extended, today)
    with db.session() as session:
        assert session.query(Case).filter_by(case_no=case_no).one().due_basis is None


# --- documents (文书) ----------------------------------------------------------------------


def run_dispatcher_once(settings, db, serve) -> None:
    import asyncio

    import httpx

    from portal.composition import build_dispatcher

    dispatcher = build_dispatcher(settings, db, transport=httpx.MockTransport(serve))

    async def one_pass():
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as client:
            dispatcher.client = client
            return await dispatcher.run_once()

    asyncio.run(one_pass())


def test_a_notice_is_fetched_like_a_licence_and_listed_for_its_owner(
    client, auth, person, formal, settings, db
):
    import hashlib

    import httpx

    from tests.conftest import register

    case_no = formal["case_no"]
    pdf = PDF_BYTES + b"%notice"
    sha = hashlib.sha256(pdf).hexdigest()
    notice = {
        "name": "受理通知书",
        "number": "武审受〔2026〕17号",
        "filename": "受理通知书.pdf",
        "content_type": "application/pdf",
        "sha256": sha,
    }
    accepted = envelope(case_no, "case.accepted", {"acceptance_no": "SL-7", "notice": notice})
    assert send(client, accepted).status_code == 200
    [listed] = status(client, auth, case_no)["documents"]
    assert listed["name"] == "受理通知书" and listed["number"] == "武审受〔2026〕17号"
    assert listed["download_url"] is None  # processed, the file still to come
    url = f"/api/v1/cases/{case_no}/documents/{notice['number']}"
    assert client.get(url, headers=auth).status_code == 404

    # The bureau is down first: retried, nothing kept; then it serves the file.
    run_dispatcher_once(settings, db, lambda request: httpx.Response(503))
    assert status(client, auth, case_no)["documents"][0]["download_url"] is None
    from sqlalchemy import update

    from portal.exchange.models import OutboxMessage

    with db.session(write=True) as session, session.begin():
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind == "document_fetch")
            .values(next_attempt_at=OutboxMessage.created_at)
        )

    def bureau(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v1/blobs/{sha}"
        return httpx.Response(200, content=pdf, headers={"Content-Type": "application/pdf"})

    run_dispatcher_once(settings, db, bureau)
    [listed] = status(client, auth, case_no)["documents"]
    assert listed["download_url"]
    got = client.get(listed["download_url"], headers=auth)
    assert got.status_code == 200 and got.content == pdf
    web_login(client, person)
    page = client.get(f"/cases/{case_no}").text
    assert "审批文书" in page and "受理通知书（武审受〔2026〕17号）" in page
    # Nobody else's: another account gets 404, exactly as for an unknown case.
    other = register(client)
    from tests.conftest import bearer

    assert client.get(listed["download_url"], headers=bearer(client, other)).status_code == 404


def test_a_notice_served_with_another_hash_is_not_kept(client, auth, formal, settings, db):
    import httpx

    case_no = formal["case_no"]
    notice = {
        "name": "补正材料通知书",
        "number": "武审补〔2026〕3号",
        "filename": "n.pdf",
        "content_type": "application/pdf",
        "sha256": "b" * 64,
    }
    data = {"materials": [{"code": formal["named"]["code"], "comment": "盖章"}], "notice": notice}
    assert send(client, envelope(case_no, "correction.requested", data)).status_code == 200
    run_dispatcher_once(settings, db, lambda r: httpx.Response(200, content=b"%PDF-other"))
    assert status(client, auth, case_no)["documents"][0]["download_url"] is None


def test_statistics_leave_the_suspended_days_out(client, auth, formal, db):
    from portal.stats.service import compute

    case_no, today = formal["case_no"], today_cst()
    accepted_on = today - timedelta(days=21)
    accept(client, case_no, accepted_on, due=(today + timedelta(days=30)).isoformat())
    start = working_day_on_or_after(accepted_on + timedelta(days=1))
    back = start + timedelta(days=7)
    assert clock_event(client, case_no, "clock.suspended", SUSPEND, start).status_code == 200
    assert clock_event(client, case_no, "clock.resumed", {}, back).status_code == 200
    second = working_day_on_or_after(back + timedelta(days=1))
    assert clock_event(client, case_no, "clock.suspended", SUSPEND, second).status_code == 200
    licence = {
        "name": "许可证",
        "number": "XK-9",
        "valid_from": today.isoformat(),
        "filename": "licence.pdf",
        "content_type": "application/pdf",
        "sha256": "c" * 64,
    }
    approve = {"decision_no": "JD-9", "licence": licence}
    assert clock_event(client, case_no, "case.approved", approve, today).status_code == 200
    suspended = sum(
        is_working_day(start + timedelta(days=i)) for i in range((back - start).days)
    ) + sum(is_working_day(second + timedelta(days=i)) for i in range((today - second).days))
    with db.session() as session:
        figures = compute(session)
    [(used, _promised)] = [p for rows in figures.days.values() for p in rows]
    assert used == max(0, working_days_left(accepted_on, today) - suspended)
    assert figures.decided == 1 and figures.on_time == 1
