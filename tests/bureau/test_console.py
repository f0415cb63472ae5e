"""The staff console: sign-in with throttling, CSRF on every form, pages and one action by form."""

from __future__ import annotations

from collections.abc import Callable

from tests.bureau.bureau_testkit import STAFF_PASSWORD, STAFF_USER, Bureau, csrf_of, staff_login

HTML = {"Accept": "text/html"}


def test_pages_need_a_signed_in_clerk(bureau: Bureau) -> None:
    response = bureau.client.get("/staff/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/staff/login?next=")
    assert bureau.client.get("/staff/files/" + "0" * 64, follow_redirects=False).status_code == 303


def test_login_rejects_wrong_passwords_and_throttles(bureau: Bureau) -> None:
    page = bureau.client.get("/staff/login")
    assert "工作人员登录" in page.text
    token = csrf_of(page.text)
    for _ in range(5):
        wrong = bureau.client.post(
            "/staff/login",
            data={"username": STAFF_USER, "password": "nope", "csrf_token": token},
        )
        assert wrong.status_code == 401
        assert "用户名或密码不正确" in wrong.text
    locked = bureau.client.post(
        "/staff/login",
        data={"username": STAFF_USER, "password": STAFF_PASSWORD, "csrf_token": token},
    )
    assert locked.status_code == 429
    assert "登录失败次数过多" in locked.text
    assert int(locked.headers["retry-after"]) > 0


def test_login_without_csrf_token_is_refused(bureau: Bureau) -> None:
    bureau.client.get("/staff/login")
    response = bureau.client.post(
        "/staff/login", data={"username": STAFF_USER, "password": STAFF_PASSWORD}, headers=HTML
    )
    assert response.status_code == 403
    assert "请刷新页面后重试" in response.text


def test_action_through_the_html_form(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    staff_login(bureau)
    queue = bureau.client.get("/staff/?status=submitted")
    assert queue.status_code == 200
    assert case_no in queue.text
    assert "待受理" in queue.text

    page = bureau.client.get(f"/staff/cases/{case_no}")
    assert page.status_code == 200
    assert "3204************3X" in page.text
    assert "32041219900101123X" not in page.text
    assert "<iframe" in page.text and "<img" in page.text  # PDF and image previews
    assert "content-security-policy" in page.headers
    token = csrf_of(page.text)

    # Without the token: 403 and nothing happens.
    forged = bureau.client.post(f"/staff/cases/{case_no}/actions/accept", data={}, headers=HTML)
    assert forged.status_code == 403
    assert bureau.case(case_no)["status"] == "submitted"

    # Invalid input: the page comes back with the 中文 reason.
    invalid = bureau.client.post(
        f"/staff/cases/{case_no}/actions/accept",
        data={"csrf_token": token, "acceptance_no": "受理!!", "due_date": ""},
    )
    assert invalid.status_code == 422
    assert "受理编号只能包含字母、数字和连字符" in invalid.text

    done = bureau.client.post(
        f"/staff/cases/{case_no}/actions/accept",
        data={"csrf_token": token, "acceptance_no": "", "due_date": ""},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = bureau.client.get(done.headers["location"])
    assert "已受理，已通知门户。" in page.text
    [event] = bureau.portal.wait_for(1, case_no=case_no)
    assert event["type"] == "case.accepted"
    assert set(event["data"]) == {"acceptance_no"}

    # A conflicting action shows the reason instead of a server error.
    again = bureau.client.post(f"/staff/cases/{case_no}/actions/accept", data={"csrf_token": token})
    assert again.status_code == 409
    assert "不能受理" in again.text


def test_return_form_collects_material_comments(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    staff_login(bureau)
    token = csrf_of(bureau.client.get(f"/staff/cases/{case_no}").text)
    bureau.client.post(
        f"/staff/cases/{case_no}/actions/return",
        data={
            "csrf_token": token,
            "comment": "请补正",
            "m0_code": "M01",
            "m0_comment": "",
            "m1_code": "M02",
            "m1_comment": "照片需包含门头",
        },
    )
    [event] = bureau.portal.wait_for(1, case_no=case_no)
    assert event["data"] == {
        "comment": "请补正",
        "materials": [{"code": "M02", "comment": "照片需包含门头"}],
    }


def test_consultations_outbox_and_files(make_bureau: Callable[..., Bureau]) -> None:
    bureau = make_bureau(dispatcher=False)
    bureau.post_event(
        "consultation.submitted",
        None,
        {
            "consultation_id": "C-1",
            "kind": "complaint",
            "subject": "窗口排队太久",
            "body": "上午排了两个小时。",
            "contact": {"name": "王五", "phone": "13700137000"},
        },
    )
    staff_login(bureau)
    page = bureau.client.get("/staff/consultations")
    assert "窗口排队太久" in page.text
    token = csrf_of(page.text)
    blank = bureau.client.post(
        "/staff/consultations/C-1/answer", data={"csrf_token": token, "answer": ""}
    )
    assert "请填写答复内容" in blank.text
    bureau.client.post(
        "/staff/consultations/C-1/answer", data={"csrf_token": token, "answer": "已加开窗口。"}
    )
    assert "已加开窗口。" in bureau.client.get("/staff/consultations").text

    outbox = bureau.client.get("/staff/outbox")
    assert "答复咨询投诉" in outbox.text
    assert "待发送" in outbox.text

    case_no = bureau.new_case()
    photo = bureau.case(case_no)["materials"][1]["files"][0]
    preview = bureau.client.get(f"/staff/files/{photo['sha256']}?name=photo.png")
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/png"
    assert preview.headers["content-disposition"].startswith("inline")


def test_logout(bureau: Bureau) -> None:
    staff_login(bureau)
    token = csrf_of(bureau.client.get("/staff/").text)
    bureau.client.post("/staff/logout", data={"csrf_token": token})
    assert bureau.client.get("/staff/", follow_redirects=False).status_code == 303


def test_bundle_shared_material_and_gaozhi_replacements_show_to_the_clerk(bureau: Bureau) -> None:
    """材料内部共享 and 告知承诺: the clerk sees where a material comes from and what a
    promise stands in for, instead of an empty material."""
    data = bureau.submitted_data(stage="formal")
    data["materials"].append(
        {
            "code": "M03",
            "name": "营业执照副本",
            "deferred": False,
            "files": [],
            "provided_by": {
                "case_no": "WJ20261201000007",
                "item_code": "SC0001",
                "licence": "营业执照",
            },
        }
    )
    data["commitment"] = {
        "text": "本人承诺所填信息真实。",
        "signed_at": "2026-12-01T10:00:00+08:00",
        "kind": "gaozhi",
        "deferred_materials": [],
        "replaced_materials": ["M04", "M05"],
    }
    case_no = "WJ20261201000099"
    assert bureau.post_event("case.submitted", case_no, data).status_code == 200
    stored = bureau.case(case_no)
    shared = next(m for m in stored["materials"] if m["code"] == "M03")
    assert shared["provided_by"]["case_no"] == "WJ20261201000007"
    staff_login(bureau)
    page = bureau.client.get(f"/staff/cases/{case_no}").text
    assert "内部共享" in page and "WJ20261201000007" in page and "无需申请人上传" in page
    assert "以承诺代替的材料 M04、M05" in page
