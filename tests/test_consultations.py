"""12345: questions and complaints forwarded to the bureau, answers in the message centre."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from portal.clock import add_working_days, today_cst
from portal.exchange.models import OutboxMessage
from portal.notifications.models import Message
from tests.conftest import (
    DEV_CODES,
    bearer,
    csrf_of,
    make_phone,
    pick_item,
    register,
    sms_code,
    web_login,
)
from tests.factories import ask, envelope, fill_everything, new_case, send
from tests.factories import consultation_events as submitted_events
from tests.kit import expire_blocks


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


# --- without an account: the phone proven by an SMS code ------------------------------------


def anonymous_ask(client, phone, code, **body):
    payload = {
        "kind": "consult",
        "subject": "网吧要办几个证",
        "body": "请问开网吧需要先办哪些手续？",
        "contact": {"name": "李先生", "phone": phone},
        "code": code,
    }
    payload.update(body)
    return client.post("/api/v1/consultations", json=payload)


def consultation_sms(db) -> list[dict]:
    with db.session() as s:
        rows = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "sms").order_by(OutboxMessage.id)
        ).all()
        return [json.loads(r.payload) for r in rows]


def test_without_an_account_the_phone_is_required_and_proven(client, db):
    phone = make_phone()
    missing = client.post(
        "/api/v1/consultations",
        json={"kind": "consult", "subject": "能否网上办理", "body": "请问能否全程网上办理？"},
    )
    assert missing.status_code == 422, missing.text
    assert set(missing.json()["error"]["fields"]) == {"contact_name", "contact_phone", "code"}
    # A case cannot be named without logging in (it could be anybody's).
    no_case = anonymous_ask(client, phone, "123456", case_no="WJ20261123000001")
    assert no_case.status_code == 422 and "登录" in no_case.json()["error"]["fields"]["case_no"]
    # Six digits, but not the code sent to that phone.
    code = sms_code(client, phone, "consultation")
    wrong = anonymous_ask(client, phone, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 422 and set(wrong.json()["error"]["fields"]) == {"code"}
    assert submitted_events(db) == []
    # A code of this phone for another purpose proves nothing here.
    other = anonymous_ask(client, make_phone(), code)
    assert other.status_code == 422
    done = anonymous_ask(client, phone, code)
    assert done.status_code == 201, done.text
    view = done.json()
    assert re.fullmatch(r"ZX\d{12}", view["reference"])
    assert view["contact"] == {"name": "李先生", "phone": phone}
    assert submitted_events(db)[-1]["data"]["contact"] == {"name": "李先生", "phone": phone}
    # The code is used up: the same one does not send a second question.
    assert anonymous_ask(client, phone, code).status_code == 422
    # A wrong or expired token is refused, not taken for a question without an account.
    bad = client.post(
        "/api/v1/consultations",
        json={"kind": "consult", "subject": "x" * 5, "body": "y" * 5},
        headers={"Authorization": "Bearer nonsense"},
    )
    assert bad.status_code == 401


def test_the_reply_is_found_by_phone_reference_and_code_and_told_by_sms(client, db):
    phone = make_phone()
    view = anonymous_ask(client, phone, sms_code(client, phone, "consultation")).json()
    data = {"consultation_id": view["consultation_id"], "answer": "先办营业执照，再办网吧筹建。"}
    assert send(client, envelope(None, "consultation.answered", data)).status_code == 200
    # No account, no message centre: an SMS to the proven phone names the reference.
    with db.session() as s:
        assert s.scalars(select(Message)).all() == []
    told = [m for m in consultation_sms(db) if m["type"] == "consultation.answered"]
    assert len(told) == 1 and told[0]["to"] == phone
    assert (
        view["reference"] in told[0]["text"]
        and told[0]["path"] == f"/consultations/lookup?ref={view['reference']}"
    )

    def lookup(phone_, reference, code):
        return client.post(
            "/api/v1/consultation-lookups",
            json={"phone": phone_, "reference": reference, "code": code},
        )

    expire_blocks(db, f"sms:phone-purpose:{phone}")  # a minute later
    found = lookup(phone, view["reference"], sms_code(client, phone, "consultation"))
    assert found.status_code == 200, found.text
    assert found.json()["answer"] == data["answer"]
    # Another phone, even with its own valid code, finds nothing, exactly as a made-up
    # reference does; the code is used either way, so each guess costs an SMS.
    stranger = make_phone()
    foreign = lookup(stranger, view["reference"], sms_code(client, stranger, "consultation"))
    expire_blocks(db, f"sms:phone-purpose:{stranger}")
    unknown = lookup(stranger, "ZX000000000000", sms_code(client, stranger, "consultation"))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"] == unknown.json()["error"]
    bad = lookup("123", "nope", "12")
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) == {"phone", "reference", "code"}


def test_a_logged_in_accounts_question_is_not_found_by_phone(client, person, auth, db):
    """Its contact phone was typed, not proven: only its owner reads it, after login."""
    view = ask(client, auth).json()
    assert view["reference"]
    code = sms_code(client, person["phone"], "consultation")
    found = client.post(
        "/api/v1/consultation-lookups",
        json={"phone": person["phone"], "reference": view["reference"], "code": code},
    )
    assert found.status_code == 404


def test_without_an_account_on_the_pages(client, db):
    phone = make_phone()
    form = client.get("/consultations/new")
    assert form.status_code == 200
    assert 'name="contact_phone"' in form.text and 'name="code"' in form.text
    assert 'href="tel:12345"' in form.text
    token = csrf_of(form.text)
    values = {
        "kind": "complaint",
        "subject": "窗口让我跑了三次",
        "body": "材料每次都说不全。",
        "contact_name": "王女士",
        "contact_phone": phone,
    }
    before = len(DEV_CODES.codes)
    sent = client.post("/consultations/code", data={"csrf_token": token, **values})
    assert sent.status_code == 200 and "验证码已发送至" in sent.text
    assert "窗口让我跑了三次" in sent.text  # the form comes back filled in
    code = DEV_CODES.codes[-1]
    assert len(DEV_CODES.codes) == before + 1
    missing = client.post("/consultations/check", data={"csrf_token": token, **values})
    assert missing.status_code == 422 and 'id="f-code-error"' in missing.text
    check = client.post("/consultations/check", data={"csrf_token": token, **values, "code": code})
    assert check.status_code == 200 and "核对咨询投诉" in check.text
    assert phone not in check.text.replace(f'value="{phone}"', "")  # shown masked
    wrong = "000000" if code != "000000" else "111111"
    refused = client.post("/consultations", data={"csrf_token": token, **values, "code": wrong})
    assert refused.status_code == 422 and 'id="f-code-error"' in refused.text
    assert "材料每次都说不全。" in refused.text and submitted_events(db) == []
    done = client.post(
        "/consultations",
        data={"csrf_token": token, **values, "code": code},
        follow_redirects=False,
    )
    assert done.status_code == 303
    detail = client.get(done.headers["location"])
    reference = re.search(r"ZX\d{12}", detail.text).group(0)
    assert "窗口让我跑了三次" in detail.text and "请记下" in detail.text
    assert len(submitted_events(db)) == 1
    # Another browser sees nothing of it without the phone's code.
    other = TestClient(client.app)
    elsewhere = other.get(done.headers["location"], follow_redirects=False)
    assert elsewhere.status_code == 404 and "窗口让我跑了三次" not in elsewhere.text
    assert "凭手机号码和编号查询" in elsewhere.text
    # …and finds it with phone + reference + a new code.
    page = other.get(f"/consultations/lookup?ref={reference}")
    assert f'value="{reference}"' in page.text
    other_token = csrf_of(page.text)
    asked = {"csrf_token": other_token, "phone": phone, "reference": reference}
    expire_blocks(db, f"sms:phone-purpose:{phone}")
    assert other.post("/consultations/lookup/code", data=asked).status_code == 200
    code = DEV_CODES.codes[-1]
    nope = other.post(
        "/consultations/lookup", data={**asked, "reference": "ZX000000000000", "code": code}
    )
    assert nope.status_code == 404 and "没有找到" in nope.text
    expire_blocks(db, f"sms:phone-purpose:{phone}")
    assert other.post("/consultations/lookup/code", data=asked).status_code == 200
    found = other.post("/consultations/lookup", data={**asked, "code": DEV_CODES.codes[-1]})
    assert found.status_code == 200 and "窗口让我跑了三次" in found.text


def test_without_an_account_submissions_are_limited_per_phone_and_address(client, db, monkeypatch):
    from portal.consultations import limits

    phone = make_phone()
    for _ in range(limits.PER_PHONE):
        expire_blocks(db, "sms:")
        answer = anonymous_ask(client, phone, sms_code(client, phone, "consultation"))
        assert answer.status_code == 201, answer.text
    expire_blocks(db, "sms:")
    code = sms_code(client, phone, "consultation")
    limited = anonymous_ask(client, phone, code)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "12345" in limited.json()["error"]["message"]
    assert len(submitted_events(db)) == limits.PER_PHONE
    # Per address, shared with the accounts' count: a host cannot add more by logging out.
    monkeypatch.setattr(limits, "PER_ADDRESS", limits.PER_PHONE + 1)
    other = make_phone()
    expire_blocks(db, "sms:")
    assert anonymous_ask(client, other, sms_code(client, other, "consultation")).status_code == 201
    third = make_phone()
    expire_blocks(db, "sms:")
    assert anonymous_ask(client, third, sms_code(client, third, "consultation")).status_code == 429
