"""Every page reads as a careful government service writes it.

Renders every public page (home, search, every item, every bundle, the halls, status,
12345) and the pages of a logged-in applicant, and fails on:

* punctuation slips: "。。", "。；", "，。" and their kin;
* placeholders: "详细门牌以…", "待定", "XX"/"××" in a hall address;
* a phone number shown without a tap-to-call `tel:` link;
* an item guide that contradicts itself: 不见面 (0 次到现场) but a step sends the
  applicant to the window, or a step sends the applicant to another website to apply
  while they are applying on this one.

The detectors are written from those rules, not from the catalogue, and are shown to
catch bad text and pass good text first (`test_the_detectors_themselves`).
"""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import pick_item, web_login
from tests.factories import ask, new_case

# --- detectors --------------------------------------------------------------------------

SLIPS = re.compile(r"[。；，、：]\s*[。；]|[，、]\s*[，、]|，\s*。|。\s*，")
PLACEHOLDERS = ("详细门牌以", "待定", "XXX", "此处填写", "TODO")
ADDRESS_PLACEHOLDER = re.compile(r"XX|xx|××|＊＊|\*\*|待定|详细门牌|某某|\?\?")
# A phone number: a landline with its area code, or the hotline after a word that says
# "call" (12345 is also the name of the service: "12345 咨询投诉" is not a number to dial).
PHONE = re.compile(
    r"(?<![\dA-Za-z])0\d{2,3}-\d{5,8}(?!\d)|(?:拨打|电话|热线|致电)[：:\s]*12345(?!\d)"
)
TEL_LINK = re.compile(r'<a\b[^>]*href="tel:[0-9+]+"[^>]*>.*?</a>', re.S)
# The applicant goes somewhere in person (a negation such as 无需到现场 is removed first).
IN_PERSON = re.compile(
    r"到现场|现场提交|窗口提交|到窗口|原件.{0,4}现场核验"
    r"|到.{0,10}(?:大厅|窗口|服务中心).{0,6}(?:提交|申请|申报|办理)"
)
NEGATED = re.compile(r"(?:无需|无须|不需|不用|不必|免于|不再)(?:再)?(?:到现场|到窗口|跑)")
# Another website or system to apply on; "本网站"/"本系统" (this one) and "在线" (online)
# are not.
ELSEWHERE = re.compile(
    r"(?:在|通过|登录|进入|到)(?!本网站|本系统|本平台|线)[^，。；]{0,20}?"
    r"(?:政务服务网|苏服办|全链通|一网通办|系统|平台|网站|App|APP|小程序)"
    r"[^。；]{0,12}?(?:申报|申请|提交|填报|上传|办理)"
)


def visible_text(page: str) -> str:
    """What a reader sees: no scripts, styles or tags; elements run together, so a slip
    split over two elements ("…。</p><p>。…") is found too."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def slips(text: str) -> list[str]:
    found = [m.group(0) for m in SLIPS.finditer(text)]
    return found + [p for p in PLACEHOLDERS if p in text]


def untapped_phones(page: str) -> list[str]:
    """Phone numbers shown as plain text (every one should be a tel: link)."""
    return PHONE.findall(visible_text(TEL_LINK.sub("", page)))


def in_person(text: str) -> list[str]:
    return [m.group(0) for m in IN_PERSON.finditer(NEGATED.sub("", text))]


def elsewhere(text: str) -> list[str]:
    return [m.group(0) for m in ELSEWHERE.finditer(text)]


def test_the_detectors_themselves():
    assert slips("已受理。。请等待") and slips("材料齐全。；") and slips("地址，。")
    assert slips("门牌待定") and not slips("材料齐全，予以受理；当场办结。")
    assert untapped_phones("<p>请拨打 12345 咨询</p>")
    assert untapped_phones("<p>电话：0519-86310000</p>")
    assert not untapped_phones('<p>请拨打 <a class="tel" href="tel:12345">12345</a></p>')
    assert not untapped_phones("<p>12345 热线答复</p><p>编号 ZX261203123456</p>")
    assert in_person("也可到任一大厅综合受理窗口提交。") and in_person("请申请人到现场签字")
    assert not in_person("全程网上办理，无需到现场。") and not in_person("可邮寄或到大厅领取。")
    assert in_person("身份证原件现场核验") and not in_person("卫生健康部门组织现场核查")
    assert elsewhere("在江苏政务服务网在线申报。") and elsewhere("登录名称自主申报系统申报")
    assert elsewhere("通过江苏政务服务网“企业开办全链通”在线填报")
    assert not elsewhere("在本网站在线申报，可选择告知承诺方式。")
    assert not elsewhere("在线申报；信息同步推送江苏省投资项目在线审批监管平台并赋予项目代码。")
    assert ADDRESS_PLACEHOLDER.search("湖塘镇××路××号") and ADDRESS_PLACEHOLDER.search(
        "政务服务中心（详细门牌以政府网站公布为准）"
    )
    assert not ADDRESS_PLACEHOLDER.search("江苏省常州市武进区湖塘镇")


# --- the pages --------------------------------------------------------------------------


def linked_from_home(client) -> list[str]:
    """Every same-site page the start page links to (header, footer, life events), so a
    page added to the footer is checked without anyone listing it here."""
    hrefs = re.findall(r'<a\b[^>]*href="(/[^"#]*)"', client.get("/").text)
    return [html.unescape(h) for h in hrefs if not h.startswith(("/static/", "//"))]


def public_pages(client) -> list[str]:
    items = client.get("/api/v1/items").json()["items"]
    bundles = client.get("/api/v1/bundles").json()["bundles"]
    assert items and bundles
    return [
        *linked_from_home(client),
        "/",
        "/items",
        "/items?q=饭店",
        "/items?q=没有这种事项的说法",
        *(f"/items?domain={d}" for d in sorted({i["domain"] for i in items})),
        *(f"/items/{i['code']}" for i in items),
        "/bundles",
        *(f"/bundles/{b['code']}" for b in bundles),
        "/halls",
        "/status",
        "/consultations/new",
        "/consultations/lookup",
        "/login",
        "/register",
    ]


def check_page(path: str, page: str) -> list[str]:
    problems = []
    text = visible_text(page)
    problems += [f"{path}: wording slip {s!r}" for s in slips(text)]
    problems += [f"{path}: phone without a tel: link {p!r}" for p in untapped_phones(page)]
    return problems


def test_every_public_page(client):
    problems = []
    for path in dict.fromkeys(public_pages(client)):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        problems += check_page(path, response.text)
    assert not problems, "\n".join(problems)


def test_the_pages_of_a_logged_in_applicant(client, person, auth):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    consultation = ask(client, auth).json()["consultation_id"]
    web_login(client, person)
    problems = []
    for path in (
        "/cases",
        f"/cases/{case_no}",
        "/consultations",
        "/consultations/new",
        f"/consultations/{consultation}",
        "/account",
        "/messages",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        problems += check_page(path, response.text)
    assert not problems, "\n".join(problems)


def test_hall_addresses_hold_no_placeholder_and_phones_are_links(client):
    halls_page = client.get("/halls").text
    items = client.get("/api/v1/items").json()["items"]
    seen = {}
    for code in [i["code"] for i in items]:
        for hall in client.get(f"/api/v1/items/{code}").json()["halls"]:
            seen[hall["code"]] = hall
    assert len(seen) >= 3
    for hall in seen.values():
        assert not ADDRESS_PLACEHOLDER.search(hall["address"]), hall
        assert hall["name"] in halls_page and hall["address"] in halls_page
        if hall.get("phone"):
            digits = re.sub(r"\D", "", hall["phone"])
            assert f'href="tel:{digits}"' in halls_page, hall
    # What is not confirmed is said on the page, not hidden in the address.
    assert "以武进区人民政府网站" in halls_page and "公布" in halls_page


def guide_problems(item: dict) -> list[str]:
    problems = []
    steps = [f"{s['name']}：{s.get('description') or ''}" for s in item["steps"]]
    for step in steps:
        problems += [
            f"{item['code']}: applies elsewhere {e!r} in {step!r}" for e in elsewhere(step)
        ]
        if item["visits"] == 0:
            problems += [
                f"{item['code']}: 0 次到现场 but {p!r} in {step!r}" for p in in_person(step)
            ]
    for m in item.get("materials", []):
        note = f"{m['name']}：{m.get('note') or ''}"
        problems += [
            f"{item['code']}: applies elsewhere {e!r} in {note!r}" for e in elsewhere(note)
        ]
        if item["visits"] == 0:
            problems += [
                f"{item['code']}: 0 次到现场 but {p!r} in {note!r}" for p in in_person(note)
            ]
    if item["visits"] == 0 and not item["online"]:
        problems.append(f"{item['code']}: 0 次到现场 but not online")
    return problems


def test_item_guides_do_not_contradict_themselves(client):
    problems = []
    for listed in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{listed['code']}").json()
        problems += guide_problems(item)
        page = client.get(f"/items/{item['code']}").text
        # The page shows the guide the data holds (so the check above is the page's).
        for step in item["steps"]:
            assert html.escape(step["description"], quote=False) in page or step[
                "description"
            ] in visible_text(page), (item["code"], step)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "item, problem",
    [
        (
            {
                "code": "X1",
                "visits": 0,
                "online": True,
                "steps": [{"name": "申请", "description": "到窗口提交材料。"}],
            },
            "0 次到现场",
        ),
        (
            {
                "code": "X2",
                "visits": 1,
                "online": True,
                "steps": [{"name": "申请", "description": "在江苏政务服务网在线申报。"}],
            },
            "applies elsewhere",
        ),
    ],
)
def test_guide_check_catches_a_bad_guide(item, problem):
    assert any(problem in p for p in guide_problems(item))
