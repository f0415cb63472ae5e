"""好差评 through HTTP: when a case may be rated, the rules of a rating, the bureau's reply."""

from __future__ import annotations

from tests.conftest import bearer, csrf_of, pick_item, register, web_login
from tests.factories import accept, approve, bureau, make_case, submitted_case
from tests.factories import sent_events as events


def rate(client, auth, case_no, body):
    return client.post(f"/api/v1/cases/{case_no}/rating", json=body, headers=auth)


def test_rating_before_the_case_is_finished_is_409(client, auth):
    _, case_no = submitted_case(client, auth)
    response = rate(client, auth, case_no, {"level": 5})
    assert response.status_code == 409
    assert "办结" in response.json()["error"]["message"]
    accept(client, case_no)
    assert rate(client, auth, case_no, {"level": 5}).status_code == 409
    # A draft deleted before it was sent: finished, but never the bureau's to be rated.
    item = pick_item(client, prereview=False)
    draft = make_case(client, auth, "withdrawn", item=item)["case_no"]
    assert rate(client, auth, draft, {"level": 5}).status_code == 409


def test_rules_of_a_rating_and_one_per_case(client, auth, db):
    case_no = make_case(client, auth, "approved", prereview=False)["case_no"]
    missing = rate(client, auth, case_no, {"level": 2})
    assert missing.status_code == 422
    assert "原因" in missing.json()["error"]["fields"]["comment"]
    blank = rate(client, auth, case_no, {"level": 1, "comment": "   "})
    assert blank.status_code == 422 and "comment" in blank.json()["error"]["fields"]
    for body in (
        {"level": 6},
        {"level": 0},
        {"level": "很好"},
        {},
        {"level": 4, "tags": ["随便写"]},
    ):
        response = rate(client, auth, case_no, body)
        assert response.status_code == 422, body
    assert rate(client, auth, case_no, {"level": 3, "comment": "长" * 2001}).status_code == 422
    assert events(db, "rating.submitted") == []

    response = rate(
        client, auth, case_no, {"level": 2, "comment": "等待时间太长", "tags": ["等待时间长"]}
    )
    assert response.status_code == 201, response.text
    rating = response.json()["rating"]
    assert rating["level"] == 2 and rating["code"] == 4 and rating["comment"] == "等待时间太长"
    [sent] = events(db, "rating.submitted", case_no)
    assert sent["data"] == {"level": 2, "code": 4, "comment": "等待时间太长"}

    again = rate(client, auth, case_no, {"level": 5})
    assert again.status_code == 409 and "已经评价" in again.json()["error"]["message"]
    assert len(events(db, "rating.submitted", case_no)) == 1


def test_gbt39046_code_is_six_minus_level(client, auth, db):
    for level in (5, 4, 3):
        case_no = make_case(client, auth, "approved", prereview=False)["case_no"]
        assert rate(client, auth, case_no, {"level": level}).status_code == 201
        [sent] = events(db, "rating.submitted", case_no)
        assert sent["data"] == {"level": level, "code": 6 - level}


def test_rejected_and_withdrawn_cases_can_be_rated(client, auth):
    rejected = make_case(client, auth, "rejected", prereview=False)["case_no"]
    assert rate(client, auth, rejected, {"level": 1, "comment": "没说清楚"}).status_code == 201
    _, withdrawn = submitted_case(client, auth)
    assert client.post(f"/api/v1/cases/{withdrawn}/withdrawal", headers=auth).status_code == 200
    assert rate(client, auth, withdrawn, {"level": 4}).status_code == 201


def test_bureau_reply_shows_under_the_rating(client, auth, person):
    case_no = make_case(client, auth, "approved", prereview=False)["case_no"]
    # No reply before a rating.
    from tests.factories import envelope, send

    early = send(client, envelope(case_no, "rating.reply", {"reply": "谢谢"}))
    assert early.status_code == 409
    assert rate(client, auth, case_no, {"level": 2, "comment": "等待时间太长"}).status_code == 201
    bureau(client, case_no, "rating.reply", {"reply": "感谢您的反馈，我们已增加窗口人员。"})
    assert (
        client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["rating"]["reply"]
        == "感谢您的反馈，我们已增加窗口人员。"
    )
    web_login(client, person)
    page = client.get(f"/cases/{case_no}").text
    mine = page.index("您的评价")
    assert page.index("等待时间太长") > mine
    assert page.index("审批局的回复") > page.index("等待时间太长")
    assert "感谢您的反馈，我们已增加窗口人员。" in page
    assert "去评价" not in page


def test_rating_page_large_choices_errors_then_thanks(client, auth, person, db):
    _, case_no = submitted_case(client, auth)
    web_login(client, person)
    assert client.get(f"/cases/{case_no}/rating").status_code == 409
    approve(client, case_no)
    case_page = client.get(f"/cases/{case_no}").text
    assert f'href="/cases/{case_no}/rating"' in case_page and "去评价" in case_page
    page = client.get(f"/cases/{case_no}/rating")
    assert page.status_code == 200
    for label in ("非常满意", "满意", "基本满意", "不满意", "非常不满意"):
        assert f">{label}</label>" in page.text
    assert 'class="rating-levels"' in page.text
    token = csrf_of(page.text)
    nothing = client.post(f"/cases/{case_no}/rating", data={"csrf_token": token})
    assert nothing.status_code == 422
    assert 'href="#f-level"' in nothing.text and "请选择满意程度" in nothing.text
    angry = client.post(
        f"/cases/{case_no}/rating",
        data={"csrf_token": token, "level": "1", "tags": ["多次补正"]},
    )
    assert angry.status_code == 422
    assert 'id="f-comment-error"' in angry.text
    assert 'value="1" checked' in angry.text and 'value="多次补正" checked' in angry.text
    done = client.post(
        f"/cases/{case_no}/rating",
        data={
            "csrf_token": token,
            "level": "1",
            "comment": "材料要求前后不一致",
            "tags": ["多次补正"],
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = client.get(f"/cases/{case_no}").text
    assert "非常不满意" in shown and "材料要求前后不一致" in shown and "多次补正" in shown
    assert client.get(f"/cases/{case_no}/rating").status_code == 409
    [sent] = events(db, "rating.submitted", case_no)
    assert sent["data"] == {"level": 1, "code": 5, "comment": "材料要求前后不一致"}


def test_another_accounts_case_is_404(client, auth):
    case_no = make_case(client, auth, "approved", prereview=False)["case_no"]
    stranger = bearer(client, register(client, name="陌生人"))
    theirs = rate(client, stranger, case_no, {"level": 5})
    missing = rate(client, stranger, "WJ20000101000001", {"level": 5})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


def test_a_rating_is_checked_before_it_is_sent(client, auth, person, db):
    """Check your answers: the check page keeps nothing; back to the form keeps the choices."""
    case_no = make_case(client, auth, "approved", prereview=False)["case_no"]
    web_login(client, person)
    token = csrf_of(client.get(f"/cases/{case_no}/rating").text)
    answers = {"csrf_token": token, "level": "2", "comment": "窗口排队太久", "tags": ["等待时间长"]}
    check = client.post(f"/cases/{case_no}/rating/check", data=answers)
    assert check.status_code == 200
    assert "不满意" in check.text and "窗口排队太久" in check.text and "确认提交评价" in check.text
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["rating"] is None
    back = client.post(f"/cases/{case_no}/rating/edit", data=answers)
    assert 'value="2" checked' in back.text and "窗口排队太久" in back.text
    wrong = client.post(f"/cases/{case_no}/rating/check", data={**answers, "comment": ""})
    assert wrong.status_code == 422 and 'id="f-comment-error"' in wrong.text
    done = client.post(f"/cases/{case_no}/rating", data=answers, follow_redirects=False)
    assert done.status_code == 303
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["rating"]["level"] == 2
    again = client.post(f"/cases/{case_no}/rating/check", data=answers)
    assert again.status_code == 409
