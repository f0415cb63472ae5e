"""12345: questions and complaints forwarded to the bureau, answers in the message centre."""

from __future__ import annotations

import json

from sqlalchemy import select

from portal.clock import add_working_days, today_cst
from portal.exchange.models import OutboxMessage
from portal.notifications.models import Message
from tests.conftest import bearer, csrf_of, pick_item, register, web_login
from tests.test_cases import fill_everything, new_case
from tests.test_exchange import envelope, send


def submitted_events(db) -> list[dict]:
    with db.session() as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == "consultation.submitted")
            .order_by(OutboxMessage.id)
        ).all()
        return [json.loads(r.payload) for r in rows]


def ask(client, auth, **body):
    payload = {
        "kind": "consult",
        "subject": "能否网上办理",
        "body": "请问食品经营许可能否全程网上办理？",
    }
    payload.update(body)
    return client.post("/api/v1/consultations", json=payload, headers=auth)


def test_question_without_a_case_is_forwarded_with_its_time_limit(client, person, auth, db):
    answer = ask(client, auth)
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert view["due_date"] == add_working_days(today_cst(), 1).isoformat()
    assert view["case_no"] is None and view["answer"] is None
    complaint = ask(
        client, auth, kind="complaint", subject="窗口等待太久", body="上午排队两个小时。"
    )
    assert complaint.json()["due_date"] == add_working_days(today_cst(), 5).isoformat()
    events = submitted_events(db)
    assert events[0]["case_no"] is None
    assert events[0]["data"] == {
        "consultation_id": view["consultation_id"],
        "kind": "consult",
        "subject": "能否网上办理",
        "body": "请问食品经营许可能否全程网上办理？",
        "contact": {"name": person["name"], "phone": person["phone"]},
    }
    assert events[1]["data"]["kind"] == "complaint"


def test_complaint_about_a_case_is_linked_to_it(client, auth, db):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
    answer = ask(
        client, auth, kind="complaint", case_no=case_no, subject="预审太慢", body="三天没有结果。"
    )
    assert answer.status_code == 201
    assert answer.json()["case_no"] == case_no
    event = submitted_events(db)[-1]
    assert event["case_no"] == case_no
    timeline = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["timeline"]
    assert timeline[0]["type"] == "consultation.submitted"
    # A draft never reached the bureau: the question goes without a case number.
    draft = new_case(client, auth, item)["case_no"]
    assert ask(client, auth, case_no=draft).json()["case_no"] == draft
    assert submitted_events(db)[-1]["case_no"] is None


def test_bad_input_is_a_clear_422(client, auth):
    stranger = bearer(client, register(client))
    item = pick_item(client, prereview=True)
    foreign = new_case(client, stranger, item)["case_no"]
    answer = ask(
        client,
        auth,
        subject="",
        body="短",
        case_no=foreign,
        contact={"name": "", "phone": "123"},
    )
    assert answer.status_code == 422
    fields = answer.json()["error"]["fields"]
    assert set(fields) == {"subject", "body", "case_no", "contact_phone"}
    assert "您自己的办件" in fields["case_no"]
    assert (
        client.post("/api/v1/consultations", json={"kind": "rant"}, headers=auth).status_code == 422
    )


def test_the_bureau_answer_lands_in_the_message_centre(client, person, auth, db):
    view = ask(client, auth).json()
    data = {"consultation_id": view["consultation_id"], "answer": "可以全程网上办理，无需到现场。"}
    response = send(client, {**envelope(None, "consultation.answered", data)})
    assert response.status_code == 200, response.text
    with db.session() as s:
        message = s.scalars(select(Message).where(Message.type == "consultation.answered")).one()
    assert message.account_id == person["account_id"]
    assert "可以全程网上办理" in message.body
    assert message.link == f"/consultations/{view['consultation_id']}"
    after = client.get(f"/api/v1/consultations/{view['consultation_id']}", headers=auth).json()
    assert after["answer"] == data["answer"] and after["answered_on_time"] is True
    # A second answer to the same question does not fit; an unknown one is 404.
    assert send(client, envelope(None, "consultation.answered", data)).status_code == 409
    unknown = {"consultation_id": "nope", "answer": "x"}
    assert send(client, envelope(None, "consultation.answered", unknown)).status_code == 404
    web_login(client, person)
    page = client.get(f"/consultations/{view['consultation_id']}")
    assert "可以全程网上办理" in page.text
    assert 'aria-label="1 条未读"' in page.text


def test_answer_about_a_case_shows_on_its_timeline(client, auth, db):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
    view = ask(client, auth, case_no=case_no).json()
    data = {"consultation_id": view["consultation_id"], "answer": "已督促经办人加快预审。"}
    assert send(client, envelope(case_no, "consultation.answered", data)).status_code == 200
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    assert case["status"] == "prereview"  # unchanged
    assert any(e["type"] == "consultation.answered" for e in case["timeline"])


def test_form_check_page_and_submission_on_the_pages(client, person, auth, db):
    web_login(client, person)
    form = client.get("/consultations/new")
    assert form.status_code == 200 and "1 个工作日内答复" in form.text
    token = csrf_of(form.text)
    wrong = client.post("/consultations/check", data={"csrf_token": token, "kind": "consult"})
    assert wrong.status_code == 422
    assert 'id="error-summary"' in wrong.text and 'id="f-subject-error"' in wrong.text
    values = {"kind": "complaint", "subject": "材料被退回三次", "body": "每次退回的意见都不一样。"}
    check = client.post("/consultations/check", data={"csrf_token": token, **values})
    assert check.status_code == 200 and "核对咨询投诉" in check.text
    assert person["phone"] not in check.text  # masked
    assert person["phone"][:3] + "****" + person["phone"][-4:] in check.text
    assert submitted_events(db) == []
    done = client.post(
        "/consultations", data={"csrf_token": token, **values}, follow_redirects=False
    )
    assert done.status_code == 303
    detail = client.get(done.headers["location"])
    assert "材料被退回三次" in detail.text and "等待答复" in detail.text
    assert len(submitted_events(db)) == 1
    assert "材料被退回三次" in client.get("/consultations").text


def test_control_characters_and_odd_ids_are_4xx(app, auth):
    from fastapi.testclient import TestClient

    quiet = TestClient(app, raise_server_exceptions=False)
    bad = quiet.post(
        "/api/v1/consultations",
        json={"kind": "consult", "subject": "a\x00b", "body": "hello\x00 world"},
        headers=auth,
    )
    assert bad.status_code == 422 and set(bad.json()["error"]["fields"]) == {"subject", "body"}
    assert quiet.get("/api/v1/consultations/a%00b", headers=auth).status_code == 422


def test_another_accounts_consultation_is_404(client, auth):
    view = ask(client, auth).json()
    other = register(client)
    assert (
        client.get(
            f"/api/v1/consultations/{view['consultation_id']}", headers=bearer(client, other)
        ).status_code
        == 404
    )
    web_login(client, other)
    assert client.get(f"/consultations/{view['consultation_id']}").status_code == 404
    assert client.get("/consultations/no-such-id").status_code == 404
