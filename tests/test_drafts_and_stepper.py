"""Through HTTP: drafts offered again on the item page and grouped
in 我的办件, and the 申请 → 受理 → 审查 → 办结 → 送达 stepper on the case page and the
public status page.

The expected stages are transcribed by hand from the case statuses of
docs/bureau-protocol.md ("Case statuses"): pre-review belongs to 申请, 补正 to 受理
(§32), acceptance starts 审查, approval or denial is 办结, and the licence's arrival
(licence.delivered) is 送达; 不予受理, 不予许可 and 已撤回 stop the case where it was.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.cases.models import Case
from tests.conftest import bearer, csrf_of, pick_item, register, valid_form, web_login
from tests.factories import (
    FOOD,
    GOOD_ADDRESS,
    accept,
    apply,
    approve,
    bureau,
    envelope,
    fill_everything,
    issue_food_licence,
    make_case,
    new_case,
    request_correction,
    send,
    submitted_case,
    true_today,
    upload,
)


def case_count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Case))


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


@pytest.fixture
def food(client, auth) -> dict:
    """A 食品经营许可 of the account, three years from expiry (注销 open, 延续 not yet)."""
    number = "JY13204120000099"
    issue_food_licence(client, auth, number, true_today() + timedelta(days=3 * 365))
    return {"number": number}


# --- item 4: drafts you find again -------------------------------------------------------


def drafts_section(html: str) -> str:
    match = re.search(r'<section class="drafts" id="drafts".*?</section>', html, re.S)
    return match.group(0) if match else ""


def start_from_item_page(client, item) -> str:
    """Tap the item page's button (在线申请 or 重新申请一份); the new draft's number."""
    page = client.get(f"/items/{item['code']}")
    data = {"csrf_token": csrf_of(page.text), "item_code": item["code"]}
    if 'name="again"' in page.text:
        data["again"] = "1"
    response = client.post("/cases", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/cases/(WJ\d+)/form", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def test_item_page_offers_a_started_draft_and_a_new_one_only_on_purpose(client, auth, person, db):
    item = pick_item(client, prereview=False)
    required_fields = [f for f in item["fields"] if f.get("required")]
    required_materials = [m for m in item["materials"] if m["required"]]
    assert len(required_fields) >= 2 and len(required_materials) >= 2  # the test needs them

    # Logged out: the plain button, no drafts.
    anonymous = client.get(f"/items/{item['code']}")
    assert ">在线申请</button>" in anonymous.text and "未提交的草稿" not in anonymous.text

    web_login(client, person)
    page = client.get(f"/items/{item['code']}")
    assert ">在线申请</button>" in page.text and 'id="drafts"' not in page.text
    case_no = start_from_item_page(client, item)

    # Fill one required field and upload one required material: a started draft.
    first = required_fields[0]
    value = valid_form(item)[first["name"]]
    answer = client.patch(
        f"/api/v1/cases/{case_no}", json={"form": {first["name"]: value}}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    assert upload(client, auth, case_no, required_materials[0]["code"]).status_code == 201

    page = client.get(f"/items/{item['code']}")
    section = text_of(drafts_section(page.text))
    assert "您有 1 份未提交的草稿" in section
    assert case_no in section
    saved = re.search(r"最后保存于 (\d{4}-\d{2}-\d{2} \d{2}:\d{2})", section)
    assert saved, section
    with db.session() as session:
        updated = session.scalars(select(Case).where(Case.case_no == case_no)).one().updated_at
    # China Standard Time: UTC+8 (stored naive UTC or aware, either way the same minute).
    cst = (updated.replace(tzinfo=None) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert saved.group(1) == cst
    # The prefill (name, phone… of the account) counts as filled, as the form shows it.
    form = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["form"]
    empty = [f for f in required_fields if form.get(f["name"]) in (None, "", False)]
    assert 0 < len(empty) < len(required_fields)
    expected = f"还差：{len(empty)} 项信息、{len(required_materials) - 1} 份材料"
    assert expected in section
    # 继续填写 goes back to the form (fields are still missing), under a name of its own.
    assert f'href="/cases/{case_no}/form">继续填写' in page.text
    assert f"继续填写草稿 {case_no}" in section
    # The button still posts with CSRF, relabelled, and says it is a new one on purpose.
    form = re.search(r'<form method="post" action="/cases">.*?</form>', page.text, re.S).group(0)
    assert 'name="csrf_token"' in form and 'name="again" value="1"' in form
    assert ">重新申请一份</button>" in form and ">在线申请<" not in form

    # An item page opened before the draft (no `again`): sent to the drafts, nothing made.
    before = case_count(db)
    stale = client.post(
        "/cases",
        data={"csrf_token": csrf_of(page.text), "item_code": item["code"]},
        follow_redirects=False,
    )
    assert stale.status_code == 303
    assert stale.headers["location"] == f"/items/{item['code']}#drafts"
    assert case_count(db) == before
    landed = client.get(stale.headers["location"])
    assert "您有 1 份该事项未提交的草稿" in landed.text

    # On purpose: a second draft; a tap again while it is blank returns the blank one.
    second = start_from_item_page(client, item)
    assert second != case_no and case_count(db) == before + 1
    assert start_from_item_page(client, item) == second
    assert case_count(db) == before + 1
    page = client.get(f"/items/{item['code']}")
    section = text_of(drafts_section(page.text))
    assert "您有 2 份未提交的草稿" in section and second in section and case_no in section

    # Complete the first one: it says so and leads to check-your-answers.
    fill_everything(client, auth, item, case_no)
    page = client.get(f"/items/{item['code']}")
    assert "已填写完整，可以提交" in text_of(drafts_section(page.text))
    assert f'href="/cases/{case_no}/review">继续填写' in page.text

    # Submitted, it is no draft any more.
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    section = text_of(drafts_section(client.get(f"/items/{item['code']}").text))
    assert "您有 1 份未提交的草稿" in section and case_no not in section


def test_nobody_sees_another_accounts_drafts(client, auth, person):
    case = make_case(client, auth, "draft", prereview=False)
    item, case_no = case["item"], case["case_no"]
    web_login(client, register(client, name="李四"))
    page = client.get(f"/items/{item['code']}")
    assert case_no not in page.text and 'id="drafts"' not in page.text
    assert ">在线申请</button>" in page.text
    assert case_no not in client.get("/cases").text


def test_a_renewals_draft_is_not_a_new_applications_draft(client, auth, person, food):
    renewal_like = apply(client, auth, food["number"], "cancellation")
    assert renewal_like.status_code == 201, renewal_like.text
    draft_no = renewal_like.json()["case_no"]
    web_login(client, person)
    page = client.get(f"/items/{FOOD}")
    assert draft_no not in page.text and 'id="drafts"' not in page.text
    assert ">在线申请</button>" in page.text
    # 我的办件 still lists it among the drafts, under its kind's name.
    listing = client.get("/cases").text
    drafts = listing[listing.index('id="drafts"') : listing.index('id="finished"')]
    assert draft_no in drafts and "食品经营许可（注销）" in drafts


def test_my_cases_groups_drafts_first_with_what_each_still_needs(client, auth, person):
    item = pick_item(client, prereview=False)
    fields = [f for f in item["fields"] if f.get("required")]
    materials = [m for m in item["materials"] if m["required"]]
    empty = new_case(client, auth, item)["case_no"]
    complete = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, complete)
    _, in_progress = submitted_case(client, auth)
    finished = make_case(client, auth, "denied", prereview=False, express=True)["case_no"]

    web_login(client, person)
    page = client.get("/cases")
    assert page.status_code == 200
    headings = re.findall(r'<h2 id="(\w+)">([^<]+)</h2>', page.text)
    assert headings == [
        ("drafts", "草稿（2）"),
        ("open", "办理中（1）"),
        ("finished", "已办结（1）"),
    ]
    drafts = text_of(page.text[page.text.index('id="drafts"') : page.text.index('id="open"')])
    open_ = page.text[page.text.index('id="open"') : page.text.index('id="finished"')]
    done = page.text[page.text.index('id="finished"') : page.text.index("<h2>更多</h2>")]
    # Phrased for the citizen: the new draft has the prefill only (name, phone…), so what it
    # lacks is every required field the account does not fill, and every material.
    lacking = re.search(
        rf"{empty} · 最后保存于 [\d\- :]+\s*还差：(\d+) 项信息、(\d+) 份材料", drafts
    )
    assert lacking, drafts
    assert 0 < int(lacking.group(1)) <= len(fields)
    assert int(lacking.group(2)) == len(materials)
    assert re.search(rf"{complete} · 最后保存于 [\d\- :]+\s*已填写完整，可以提交", drafts)
    assert in_progress in open_ and "已提交，等待受理" in open_
    assert finished in done and "已办结：不予许可" in done
    assert in_progress not in drafts and finished not in drafts


# --- item 7: the stepper ---------------------------------------------------------------

STAGES = ["申请", "受理", "审查", "办结", "送达"]


def stepper(html: str) -> list[tuple[str, str, str]]:
    """(stage, what it says, visible note) of each step, and checks the markup's rules."""
    match = re.search(r'<ol class="stepper" aria-label="办理进度">(.*?)</ol>', html, re.S)
    assert match, "no stepper on the page"
    steps = re.findall(
        r"<li class=\"stage-(\w+)\"( aria-current=\"step\")?>(.*?)</li>", match.group(1), re.S
    )
    assert len(steps) == 5
    found = []
    for state, current, inner in steps:
        assert bool(current) == (state == "current")
        hidden = re.search(r'<span class="visually-hidden">（(.+?)）</span>', inner).group(1)
        note = re.search(r'<span class="stage-note">(.+?)</span>', inner)
        name = inner.split("<", 1)[0]
        found.append((name, hidden, note.group(1) if note else ""))
    assert [name for name, _, _ in found] == STAGES
    return [(name, said, note) for name, said, note in found]


D, C, T, X, S = "已完成", "当前步骤", "未开始", "已终止", "不再进行"


def says(*states: str, note: str = "", at: int | None = None) -> list[tuple[str, str, str]]:
    return [
        (name, state, note if i == at else "")
        for i, (name, state) in enumerate(zip(STAGES, states, strict=True))
    ]


def both_pages(client, person, case_no, expected):
    """The case page (logged in) and the public status page show the same stepper."""
    web_login(client, person)
    assert stepper(client.get(f"/cases/{case_no}").text) == expected
    public = client.get("/status", params={"case_no": case_no, "phone_last4": person["phone"][-4:]})
    assert public.status_code == 200, public.text
    assert stepper(public.text) == expected


def test_stepper_follows_a_case_to_its_licence_at_home(client, auth, person):
    item = pick_item(client, prereview=False, express=True)
    case_no = new_case(client, auth, item)["case_no"]
    web_login(client, person)
    assert stepper(client.get(f"/cases/{case_no}").text) == says(C, T, T, T, T)
    fill_everything(client, auth, item, case_no)
    client.put(
        f"/api/v1/cases/{case_no}/delivery",
        json={"method": "express", "address": GOOD_ADDRESS},
        headers=auth,
    )
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    both_pages(client, person, case_no, says(D, C, T, T, T))
    accept(client, case_no)
    both_pages(client, person, case_no, says(D, D, C, T, T))
    bureau(
        client,
        case_no,
        "case.approved",
        {
            "decision_no": "决-1",
            "licence": {
                "name": "许可证",
                "number": "XK-7",
                "valid_from": "2026-11-27",
                "filename": "XK-7.pdf",
                "content_type": "application/pdf",
                "sha256": "7" * 64,
            },
        },
    )
    both_pages(client, person, case_no, says(D, D, D, D, C))
    bureau(client, case_no, "licence.shipped", {"carrier": "EMS", "tracking_no": "EM123456789CN"})
    both_pages(client, person, case_no, says(D, D, D, D, C))
    bureau(client, case_no, "licence.delivered", {"signed_at": "2026-11-29T15:20:00+08:00"})
    both_pages(client, person, case_no, says(D, D, D, D, D))


def test_pre_review_and_correction_stay_in_their_stage(client, auth, person):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
    both_pages(client, person, case_no, says(C, T, T, T, T))  # 网上预审中
    send(client, envelope(case_no, "prereview.passed", {}))
    both_pages(client, person, case_no, says(C, T, T, T, T))  # 预审通过，待正式提交
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    code = next(m["code"] for m in item["materials"] if m["required"])
    assert request_correction(client, case_no, code).status_code == 200
    both_pages(client, person, case_no, says(D, C, T, T, T))  # 待补正: still before 受理


def test_stops_say_where_and_why_in_words(client, auth, person):
    _, rejected = submitted_case(client, auth)
    bureau(client, rejected, "case.rejected", {"reason": "不属于本机关职权范围"})
    both_pages(client, person, rejected, says(D, X, S, S, S, note="不予受理", at=1))

    _, denied = submitted_case(client, auth)
    accept(client, denied)
    bureau(client, denied, "case.denied", {"reason": "不符合条件"})
    both_pages(client, person, denied, says(D, D, D, X, S, note="不予许可", at=3))

    _, withdrawn = submitted_case(client, auth)
    response = client.post(
        f"/api/v1/cases/{withdrawn}/withdrawal", json={"reason": "不办了"}, headers=auth
    )
    assert response.status_code == 200, response.text
    both_pages(client, person, withdrawn, says(D, X, S, S, S, note="已撤回", at=1))

    # Withdrawn during pre-review: it never left 申请.
    item = pick_item(client, prereview=True)
    early = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, early)
    assert client.post(f"/api/v1/cases/{early}/prereview", headers=auth).status_code == 202
    assert (
        client.post(f"/api/v1/cases/{early}/withdrawal", json={}, headers=auth).status_code == 200
    )
    both_pages(client, person, early, says(X, S, S, S, S, note="已撤回", at=0))


def test_a_cancellation_is_done_when_decided(client, auth, person, food):
    case = apply(client, auth, food["number"], "cancellation").json()
    case_no = case["case_no"]
    answer = client.patch(
        f"/api/v1/cases/{case_no}", json={"form": {"cancel_reason": "终止食品经营"}}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    for m in case["materials"]:
        if m["required"]:
            assert upload(client, auth, case_no, m["code"]).status_code == 201
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    send(client, envelope(case_no, "case.accepted", {"acceptance_no": "SL-C1"}))
    assert (
        send(client, envelope(case_no, "case.approved", {"decision_no": "D-C1"})).status_code == 200
    )
    both_pages(client, person, case_no, says(D, D, D, D, S, note="无需送达", at=4))


def test_status_page_stepper_for_a_stranger_shows_nothing_personal(client, auth, person):
    _, case_no = submitted_case(client, auth)
    approve(client, case_no)
    stranger = bearer(client, register(client, name="陌生人"))
    assert client.get(f"/api/v1/cases/{case_no}", headers=stranger).status_code == 404
    public = client.get("/status", params={"case_no": case_no, "phone_last4": person["phone"][-4:]})
    assert stepper(public.text) == says(D, D, D, D, C)
    assert person["name"] not in public.text and person["phone"] not in public.text
