"""Typed, checked fields (citizen-api.md, "Item form fields, more types"), through HTTP.

Which numbers are valid is decided here from the standards themselves, not from the
portal's checker or python-stdnum: GB 11643's ISO 7064 MOD 11-2 check digit for a
居民身份证号码 and GB 32100's MOD 31 check character for a 统一社会信用代码, with the
standards' published examples as fixed points. A value that fails never reaches the
bureau: a save answers 422 and keeps nothing, and a value stored behind the checker's
back is refused again at pre-review and formal submission, single or bundled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.cases.models import Case
from portal.catalogue.service import read_catalogue_file
from portal.exchange.models import OutboxMessage
from tests.conftest import CATALOGUE, VALID_RIC, VALID_USCC, csrf_of, valid_form, web_login
from tests.factories import fill_bundle as fill
from tests.factories import fill_everything, new_case
from tests.factories import start_bundle as start
from tests.kit import RIC_WEIGHTS, ric_check, uscc_check

# --- the oracles: check digits computed from the standards ------------------------------


def test_the_oracles_agree_with_the_published_examples():
    assert RIC_WEIGHTS == [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    assert ric_check(VALID_RIC[:17]) == VALID_RIC[17] == "X"  # GB 11643's own example
    # By hand: 3·7+2·9+0·10+4·5+1·8+2·4+1·2+9·1+9·6+0·3+0·7+1·9+0·10+1·5+1·8+2·4+3·2
    # = 176 = 16·11, remainder 0 → "1".
    assert ric_check("32041219900101123") == "1"
    assert uscc_check(VALID_USCC[:17]) == VALID_USCC[17] == "3"


HAND_RIC = "320412199001011231"  # 武进区, born 1990-01-01, check digit computed above
OTHER_USCC = "91320412MA1ABCDE1" + uscc_check("91320412MA1ABCDE1")

RIC_CASES = [  # (value, valid)
    (VALID_RIC, True),
    (VALID_RIC.lower(), True),  # a lower-case x is the same number
    (HAND_RIC, True),
    ("３２０４１２１９９００１０１１２３１", True),  # typed with a full-width input method
    (VALID_RIC[:17] + "1", False),  # wrong check digit
    (HAND_RIC[:17] + "X", False),
    (HAND_RIC[:17], False),  # 17 characters
    (HAND_RIC + "1", False),  # 19
    ("32041219901301" + "123" + ric_check("32041219901301123"), False),  # month 13
    ("99041219900101123" + ric_check("99041219900101123"), False),  # no province 99
    ("3204121990010112A" + "1", False),
]
USCC_CASES = [
    (VALID_USCC, True),
    (VALID_USCC.lower(), True),
    (OTHER_USCC, True),
    (VALID_USCC[:17] + "4", False),  # wrong check character
    (VALID_USCC[:16] + "I3", False),  # I is not in the alphabet
    (VALID_USCC[:17], False),
    (VALID_USCC + "3", False),
]


def _case_with(client, auth, field_type: str, *, prereview: bool | None = None):
    """A draft of the first online item that has a field of this type, and that field."""
    for summary in client.get("/api/v1/items").json()["items"]:
        if not summary["online"] or (prereview is not None and summary["prereview"] != prereview):
            continue
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        spec = next((f for f in item["fields"] if f["type"] == field_type), None)
        if spec is not None:
            return item, spec, new_case(client, auth, item)
    raise AssertionError(f"no online item has a {field_type} field")


def _patch(client, auth, case_no, form):
    return client.patch(f"/api/v1/cases/{case_no}", json={"form": form}, headers=auth)


@pytest.mark.parametrize(("value", "valid"), RIC_CASES)
def test_a_ric_field_takes_exactly_the_numbers_with_a_right_check_digit(client, auth, value, valid):
    _, spec, case = _case_with(client, auth, "ric")
    response = _patch(client, auth, case["case_no"], {spec["name"]: value})
    if valid:
        assert response.status_code == 200, response.text
        stored = response.json()["form"][spec["name"]]
        assert len(stored) == 18 and ric_check(stored[:17]) == stored[17]
    else:
        assert response.status_code == 422, response.text
        message = response.json()["error"]["fields"][f"form.{spec['name']}"]
        assert spec["label"] in message and "居民身份证号码" in message


def test_the_wrong_check_digit_says_so(client, auth):
    _, spec, case = _case_with(client, auth, "ric")
    response = _patch(client, auth, case["case_no"], {spec["name"]: VALID_RIC[:17] + "1"})
    message = response.json()["error"]["fields"][f"form.{spec['name']}"]
    assert message == f"{spec['label']}：请输入正确的18位居民身份证号码（校验位不符）"


@pytest.mark.parametrize(("value", "valid"), USCC_CASES)
def test_a_uscc_field_takes_exactly_the_codes_with_a_right_check_character(
    client, auth, value, valid
):
    _, spec, case = _case_with(client, auth, "uscc")
    response = _patch(client, auth, case["case_no"], {spec["name"]: value})
    if valid:
        assert response.status_code == 200, response.text
        stored = response.json()["form"][spec["name"]]
        assert stored == value.upper() and uscc_check(stored[:17]) == stored[17]
    else:
        assert response.status_code == 422, response.text
        message = response.json()["error"]["fields"][f"form.{spec['name']}"]
        assert spec["label"] in message and "统一社会信用代码" in message


@pytest.mark.parametrize(
    ("value", "stored"),
    [("3", 3), (3, 3), (3.0, 3), (" 12 ", 12), ("1.5", None), (1.5, None), ("三", None)],
)
def test_an_integer_field_takes_whole_numbers_only(client, auth, value, stored):
    item, spec, case = _case_with(client, auth, "integer")
    assert spec["min"] is not None and spec["max"] is not None
    response = _patch(client, auth, case["case_no"], {spec["name"]: value})
    if stored is None or not spec["min"] <= stored <= spec["max"]:
        assert response.status_code == 422, response.text
        assert spec["label"] in response.json()["error"]["fields"][f"form.{spec['name']}"]
    else:
        assert response.status_code == 200, response.text
        kept = response.json()["form"][spec["name"]]
        assert kept == stored and isinstance(kept, int)


def test_integer_bounds_and_text_lengths_come_from_the_catalogue(client, auth):
    item = client.get("/api/v1/items/SC0001").json()
    fields = {f["name"]: f for f in item["fields"]}
    shareholders = fields["shareholder_count"]
    assert shareholders["type"] == "integer" and (shareholders["min"], shareholders["max"]) == (
        1,
        50,
    )
    assert fields["legal_rep_id_number"]["type"] == "ric"
    case = new_case(client, auth, item)
    for bad in (0, 51, "1.5"):
        answer = _patch(client, auth, case["case_no"], {"shareholder_count": bad})
        assert answer.status_code == 422, bad
    trade_mark = client.get("/api/v1/items/SC0003").json()
    spec = next(f for f in trade_mark["fields"] if f["name"] == "name_trade_mark")
    assert spec["min_length"] == 2
    case = new_case(client, auth, trade_mark)
    one = _patch(client, auth, case["case_no"], {"name_trade_mark": "华"})
    assert one.status_code == 422
    assert "至少填写 2 个字" in one.json()["error"]["fields"]["form.name_trade_mark"]
    assert _patch(client, auth, case["case_no"], {"name_trade_mark": "华远"}).status_code == 200


def test_a_patch_with_one_bad_value_saves_nothing(client, auth):
    item, spec, case = _case_with(client, auth, "ric")
    case_no = case["case_no"]
    good = valid_form(item)
    assert _patch(client, auth, case_no, good).status_code == 200
    before = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["form"]
    others = {k: v for k, v in good.items() if k != spec["name"] and isinstance(v, str)}
    changed = {k: "另一个合法的值" for k in list(others)[:1]}
    response = _patch(client, auth, case_no, {**changed, spec["name"]: VALID_RIC[:17] + "1"})
    assert response.status_code == 422
    assert set(response.json()["error"]["fields"]) == {f"form.{spec['name']}"}
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["form"] == before
    # Creating a draft with a bad value creates nothing either.
    count = len(client.get("/api/v1/cases", headers=auth).json()["cases"])
    refused = client.post(
        "/api/v1/cases",
        json={"item_code": item["code"], "form": {spec["name"]: "123"}},
        headers=auth,
    )
    assert refused.status_code == 422
    assert len(client.get("/api/v1/cases", headers=auth).json()["cases"]) == count


# --- the pages: errors by the field and in one summary, in page order ----------------------


def _page_values(item: dict, **overrides) -> dict[str, str]:
    values = {f"form.{f['name']}": "" for f in item["fields"] if f["type"] != "checkbox"}
    values.update({f"form.{k}": v for k, v in overrides.items()})
    return values


def test_the_form_page_shows_each_problem_by_its_field_and_in_page_order(client, person, auth):
    item = client.get("/api/v1/items/SC0001").json()
    case_no = new_case(client, auth, item)["case_no"]
    before = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["form"]
    web_login(client, person)
    url = f"/cases/{case_no}/form"
    page = client.get(url)
    # Inputs that help typing; the server still checks every value.
    ric_input = re.search(r'<input[^>]*id="f-form\.legal_rep_id_number"[^>]*>', page.text)[0]
    assert 'maxlength="18"' in ric_input and 'autocomplete="off"' in ric_input
    assert 'spellcheck="false"' in ric_input
    count_input = re.search(r'<input[^>]*id="f-form\.shareholder_count"[^>]*>', page.text)[0]
    assert 'inputmode="numeric"' in count_input
    name_input = re.search(r'<input[^>]*id="f-form\.business_name"[^>]*>', page.text)[0]
    assert 'minlength="6"' in name_input and 'maxlength="100"' in name_input
    bad = {
        "business_name": "某",
        "legal_rep_id_number": VALID_RIC[:17] + "1",
        "shareholder_count": "1.5",
    }
    answer = client.post(url, data={**_page_values(item, **bad), "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 422
    summary = answer.text.split('id="error-summary"')[1].split("</div>")[0]
    assert "请修改以下问题" in summary
    linked = re.findall(r'href="#f-form\.([a-z_]+)"', summary)
    page_order = [f["name"] for f in item["fields"]]
    assert linked == sorted(linked, key=page_order.index), "the summary follows the page"
    assert set(bad) <= set(linked)
    for name in bad:
        assert f'id="f-form.{name}-error"' in answer.text
    assert "（校验位不符）" in summary and "不能有小数" in summary
    # Nothing was saved.
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["form"] == before


def test_an_empty_save_lists_what_is_still_missing(client, person, auth):
    item = client.get("/api/v1/items/SC0001").json()
    case_no = new_case(client, auth, item)["case_no"]
    web_login(client, person)
    url = f"/cases/{case_no}/form"
    page = client.get(url)
    assert 'id="still-missing"' not in page.text
    saved = client.post(
        url,
        data={**_page_values(item), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and "/form?saved=1" in saved.headers["location"]
    shown = client.get(saved.headers["location"])
    box = shown.text.split('id="still-missing"')[1].split("</div>")[0]
    required = [f for f in item["fields"] if f["required"]]
    assert re.findall(r'href="#f-form\.([a-z_]+)"', box) == [f["name"] for f in required]
    assert all(f["label"] in box for f in required) and "还没有填写任何内容" in box
    # Half filled: saved, and the rest is still listed.
    first = required[0]["name"]
    half = client.post(
        url,
        data={
            **_page_values(item, **{first: valid_form(item)[first]}),
            "csrf_token": csrf_of(shown.text),
        },
        follow_redirects=False,
    )
    box = client.get(half.headers["location"]).text.split('id="still-missing"')[1]
    box = box.split("</div>")[0]
    assert f"已保存。还有 {len(required) - 1} 项" in box and f"#f-form.{first}" not in box
    # Everything filled: on to the materials.
    full = {k: ("true" if v is True else str(v)) for k, v in valid_form(item).items()}
    done = client.post(
        url,
        data={**{f"form.{k}": v for k, v in full.items()}, "csrf_token": csrf_of(shown.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith("#materials")


def test_every_error_summary_has_the_same_heading():
    headings = set()
    for path in Path("templates").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        headings |= set(re.findall(r'<h2 id="error-summary-title">([^<]*)</h2>', text))
    assert headings <= {"{{ SUMMARY_HEADING }}"}, headings


# --- 一件事: a shared field obeys every item's rules --------------------------------------


def test_a_bundle_refuses_the_values_the_issue_saw_reach_the_bureau(client, person, auth):
    application = start(client, auth)  # 开办餐饮店: 名称自主申报, 公司设立, 食品经营, 排水
    forms = {
        c["case_no"]: client.get(f"/api/v1/cases/{c['case_no']}", headers=auth).json()["form"]
        for c in application["cases"]
    }
    bad = {
        "legal_rep_id_number": VALID_RIC[:17] + "1",
        "name_trade_mark": "华",
        "shareholder_count": "1.5",
    }
    response = client.patch(
        f"/api/v1/bundle-applications/{application['id']}", json={"form": bad}, headers=auth
    )
    assert response.status_code == 422
    assert set(response.json()["error"]["fields"]) == {f"form.{k}" for k in bad}
    for case_no, form in forms.items():
        assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["form"] == form
    # On the one form's page: by the field, in the summary, in the one form's order.
    web_login(client, person)
    url = f"/bundle-applications/{application['id']}/form"
    page = client.get(url)
    order = re.findall(r'name="form\.([a-z_0-9]+)"', page.text)
    values = {f"form.{f['name']}": "" for f in application["fields"] if f["type"] != "checkbox"}
    values |= {f"form.{k}": v for k, v in bad.items()}
    answer = client.post(url, data={**values, "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 422
    summary = answer.text.split('id="error-summary"')[1].split("</div>")[0]
    linked = re.findall(r'href="#f-form\.([a-z_]+)"', summary)
    assert set(bad) <= set(linked) and linked == sorted(linked, key=order.index)
    assert all(f'id="f-form.{k}-error"' in answer.text for k in bad)


def test_a_shared_field_takes_the_strictest_rule_of_its_items(client, auth):
    application = start(client, auth)
    shared = next(f for f in application["fields"] if f["name"] == "business_name")
    assert len(shared["used_by"]) > 1
    rules = [
        next(
            f
            for f in client.get(f"/api/v1/items/{c['item_code']}").json()["fields"]
            if f["name"] == "business_name"
        )
        for c in application["cases"]
    ]
    strictest = max(r.get("min_length") or 1 for r in rules)
    assert strictest > min(r.get("min_length") or 1 for r in rules)
    assert shared["min_length"] == strictest
    short = "某" * (strictest - 1)  # enough for some items, not for all
    response = client.patch(
        f"/api/v1/bundle-applications/{application['id']}",
        json={"form": {"business_name": short}},
        headers=auth,
    )
    assert response.status_code == 422
    assert "form.business_name" in response.json()["error"]["fields"]
    lenient = next(
        c
        for c, r in zip(application["cases"], rules, strict=True)
        if (r.get("min_length") or 1) < strictest
    )
    alone = _patch(client, auth, lenient["case_no"], {"business_name": short})
    assert alone.status_code == 200, "the item on its own accepts it: the bundle adds the rule"


# --- the second check: a stored value that fails is not sent ------------------------------


def _corrupt(db, case_no: str, **values) -> None:
    """Write values straight into the stored form, as an older catalogue might have left them."""
    with db.session(write=True) as session, session.begin():
        case = session.scalars(select(Case).where(Case.case_no == case_no)).one()
        case.form = {**case.form, **values}


def _outbox(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage))


def test_prereview_refuses_a_stored_value_that_fails_its_type(client, auth, db):
    item, spec, case = _case_with(client, auth, "ric", prereview=True)
    fill_everything(client, auth, item, case["case_no"])
    _corrupt(db, case["case_no"], **{spec["name"]: VALID_RIC[:17] + "1"})
    before = _outbox(db)
    response = client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert (
        list(fields) == [f"form.{spec['name']}"] and "校验位不符" in fields[f"form.{spec['name']}"]
    )
    assert _outbox(db) == before, "nothing reached the bureau"
    assert client.get(f"/api/v1/cases/{case['case_no']}", headers=auth).json()["status"] == "draft"


def test_formal_submission_refuses_a_stored_value_that_fails_its_type(client, auth, db):
    item, spec, case = _case_with(client, auth, "integer", prereview=False)
    fill_everything(client, auth, item, case["case_no"])
    _corrupt(db, case["case_no"], **{spec["name"]: 1.5})
    before = _outbox(db)
    response = client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth)
    assert response.status_code == 422, response.text
    assert f"form.{spec['name']}" in response.json()["error"]["fields"]
    assert _outbox(db) == before
    # Put right, it goes.
    assert (
        _patch(
            client, auth, case["case_no"], {spec["name"]: valid_form(item)[spec["name"]]}
        ).status_code
        == 200
    )
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth).status_code == 202
    )


def test_a_bundle_submission_refuses_a_stored_bad_value_and_sends_nothing(client, auth, db):
    application = fill(client, auth, start(client, auth))
    company = next(c for c in application["cases"] if c["item_code"] == "SC0001")
    _corrupt(db, company["case_no"], legal_rep_id_number=VALID_RIC[:17] + "1")
    before = _outbox(db)
    response = client.post(
        f"/api/v1/bundle-applications/{application['id']}/submission", headers=auth
    )
    assert response.status_code == 422, response.text
    assert "form.legal_rep_id_number" in response.json()["error"]["fields"]
    assert _outbox(db) == before, "all or nothing: no case of the bundle was sent"
    after = client.get(f"/api/v1/bundle-applications/{application['id']}", headers=auth).json()
    assert after["status"] == "draft" and {c["status"] for c in after["cases"]} == {"draft"}


# --- the catalogue loader ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"type": "idcard"},  # an unknown type
        {"type": "number", "min_length": 2},  # lengths are for text
        {"type": "text", "min": 1},  # bounds are for numbers
        {"type": "integer", "min": 1.5},  # an integer's bounds are whole
        {"type": "text", "min_length": 5, "max_length": 4},
        {"type": "ric", "options": ["a"]},
    ],
)
def test_the_loader_refuses_a_field_it_cannot_check(tmp_path, change):
    raw = json.loads(Path(CATALOGUE).read_text(encoding="utf-8"))
    field = raw["items"][0]["fields"][0]
    for key in ("min", "max", "min_length", "max_length", "options"):
        field.pop(key, None)
    field.update(change)
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match="not valid"):
        read_catalogue_file(path)


def test_every_identity_number_of_the_catalogue_is_typed():
    catalogue = read_catalogue_file(CATALOGUE)
    for item in catalogue.items:
        for spec in item.fields:
            if "身份证" in spec.label:
                assert spec.type == "ric", (item.code, spec.name)
            if "统一社会信用代码" in spec.label:
                assert spec.type == "uscc", (item.code, spec.name)
