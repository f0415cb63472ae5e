"""Invariants of the bundled catalogue data file (事项清单).

Stdlib only: reads portal/catalogue/data/catalogue.json directly, so a broken
data file is reported here with the item code, before any loader runs.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CATALOGUE_PATH = ROOT / "portal" / "catalogue" / "data" / "catalogue.json"

RAW = CATALOGUE_PATH.read_text(encoding="utf-8")
DATA = json.loads(RAW)
ITEMS = DATA["items"]
HALLS = DATA["halls"]
BUNDLES = DATA["bundles"]

CODE_RE = re.compile(r"^(SC|TZ|SH|QT)\d{4}$")
PREFIX_DOMAIN = {"SC": "market", "TZ": "investment", "SH": "social", "QT": "other"}
STEP_ORDER = ["申请", "受理", "审查", "现场核查", "决定", "送达"]
FIELD_TYPES = {
    "text",
    "textarea",
    "number",
    "integer",
    "date",
    "phone",
    "select",
    "checkbox",
    "ric",
    "uscc",
}
SNAKE_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
MATERIAL_CODE_RE = re.compile(r"^M\d{2}$")

# Shared material vocabulary: every name used with one of these kinds must
# contain one of the listed words, so the same kind means the same document.
KIND_FAMILY = {
    "id_card": ("身份证明",),
    "business_licence": ("营业执照",),
    "articles_of_association": ("章程",),
    "lease_contract": ("使用证明", "使用权证明"),
    "premises_title": ("产权",),
    "floor_plan": ("平面",),
    "location_map": ("方位示意图",),
    "health_certificates": ("健康",),
    "food_safety_system": ("食品安全",),
    "hygiene_system": ("卫生管理制度",),
    "equipment_list": ("设备",),
    "power_of_attorney": ("委托",),
    "land_certificate": ("土地权属",),
    "planning_drawings": ("设计", "图"),
    "construction_contract": ("施工合同",),
    "fire_safety": ("消防",),
    "environmental_approval": ("环境影响",),
    "project_filing": ("备案", "核准"),
    "qualification_certificates": ("资格",),
    "staff_list": ("名单",),
    "safety_management": ("安全",),
    "quality_management": ("质量",),
    "fund_proof": ("资金", "验资"),
}

# Field names shared across items: a bundle asks them once, so they must keep one type.
SHARED_FIELD_TYPES = {
    "business_name": "text",
    "uscc": "uscc",
    "legal_rep_name": "text",
    "legal_rep_id_number": "ric",
    "contact_name": "text",
    "contact_phone": "phone",
    "business_address": "text",
    "business_area": "number",
    "employee_count": "integer",
    "project_name": "text",
    "project_address": "text",
    "total_investment": "number",
    "building_area": "number",
    "start_date": "date",
}


def item_ids(items):
    return [i["code"] for i in items]


def test_file_is_utf8_two_space_indent_unescaped():
    assert "\\u" not in RAW, "Chinese text must be stored unescaped"
    assert json.dumps(DATA, ensure_ascii=False, indent=2) + "\n" == RAW, (
        "file must be 2-space indented JSON"
    )


def test_top_level_shape():
    assert DATA["version"]
    assert DATA["authority"]["name"]
    assert len(ITEMS) >= 30
    assert {i["domain"] for i in ITEMS} == set(PREFIX_DOMAIN.values())


def test_item_codes_unique_and_match_domain():
    codes = [i["code"] for i in ITEMS]
    assert len(codes) == len(set(codes)), "duplicate item codes"
    for item in ITEMS:
        assert CODE_RE.match(item["code"]), item["code"]
        assert PREFIX_DOMAIN[item["code"][:2]] == item["domain"], item["code"]


def test_item_names_unique():
    names = [i["name"] for i in ITEMS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_item_basics(item):
    assert item["name"] and item["department"] and item["category"]
    assert len(item["basis"]) >= 1 and all(b.strip() for b in item["basis"])
    assert len(item["conditions"]) >= 2
    assert isinstance(item["legal_days"], int) and isinstance(item["promised_days"], int)
    assert 1 <= item["promised_days"] <= item["legal_days"]
    assert item["visits"] in (0, 1, 2)
    for flag in ("online", "prereview", "express"):
        assert isinstance(item[flag], bool)
    assert item["fee"]
    assert item["licence"]["name"]
    vy = item["licence"]["valid_years"]
    assert vy is None or (isinstance(vy, int) and vy >= 1)
    assert item["sources"], "every item names where its facts came from"


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_steps_from_list_in_order(item):
    names = [s["name"] for s in item["steps"]]
    assert names, "an item has steps"
    assert all(n in STEP_ORDER for n in names), names
    positions = [STEP_ORDER.index(n) for n in names]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), names
    assert names[0] == "申请"
    assert all(s["description"] for s in item["steps"])


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_fields(item):
    fields = item["fields"]
    assert 3 <= len(fields) <= 8
    names = [f["name"] for f in fields]
    assert len(names) == len(set(names))
    for f in fields:
        assert SNAKE_RE.match(f["name"]), f["name"]
        assert f["type"] in FIELD_TYPES, f
        assert f["label"]
        assert isinstance(f["required"], bool)
        if f["type"] == "select":
            assert f.get("options") and all(isinstance(o, str) and o for o in f["options"]), f[
                "name"
            ]
            assert len(set(f["options"])) == len(f["options"])
        else:
            assert "options" not in f, f["name"]
        if "min" in f or "max" in f:
            assert f["type"] in ("number", "integer"), f["name"]
            if "min" in f and "max" in f:
                assert f["min"] <= f["max"]
        if f["type"] == "integer":
            assert all(float(f[k]).is_integer() for k in ("min", "max") if k in f), f["name"]
        if "max_length" in f or "min_length" in f:
            assert f["type"] in ("text", "textarea"), f["name"]
            assert 0 < f.get("min_length", 1) <= f.get("max_length", 2000), f["name"]


# Typed by what the label asks for: every such field, in every item.
def _typed(label: str) -> str | None:
    if "身份证" in label:
        return "ric"
    if "统一社会信用代码" in label:
        return "uscc"
    if re.search(r"(人数|人员数|台数|车辆数|班级数|床位数|会员数|（月）|数量)$", label):
        return "integer"
    return None


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_identity_numbers_and_counts_are_typed(item):
    for f in item["fields"]:
        if expected := _typed(f["label"]):
            assert f["type"] == expected, (f["name"], f["label"])
        if f["type"] == "integer":
            assert "min" in f and "max" in f, f["name"]


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_names_and_addresses_have_a_shortest_length(item):
    for f in item["fields"]:
        if f["type"] == "text" and re.search(r"(名称|姓名|字号|地址|场所|单位|地点)", f["label"]):
            assert f.get("min_length", 1) >= 2, (f["name"], f["label"])
        if f["label"] == "字号":
            assert f["min_length"] >= 2  # 企业名称登记管理规定实施办法: 字号应当由两个以上汉字组成


def test_shared_fields_keep_one_type():
    types = defaultdict(set)
    for item in ITEMS:
        for f in item["fields"]:
            types[f["name"]].add(f["type"])
    for name, seen in types.items():
        assert len(seen) == 1, f"field {name} has types {seen}"
        if name in SHARED_FIELD_TYPES:
            assert seen == {SHARED_FIELD_TYPES[name]}, name


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_materials(item):
    mats = item["materials"]
    assert mats
    codes = [m["code"] for m in mats]
    assert len(codes) == len(set(codes)), "material codes unique within the item"
    assert all(MATERIAL_CODE_RE.match(c) for c in codes)
    kinds = [m["kind"] for m in mats]
    assert len(kinds) == len(set(kinds)), "one material per kind within an item"
    assert kinds.count("application_form") == 1
    for m in mats:
        assert SNAKE_RE.match(m["kind"]), m["kind"]
        assert m["name"]
        assert isinstance(m["copies"], int) and m["copies"] >= 1
        assert isinstance(m["required"], bool) and isinstance(m["deferrable"], bool)
        if m["deferrable"]:
            assert m["kind"] not in ("application_form", "id_card"), m
            assert m["required"], "容缺 only makes sense for a required material"
    deferrable = [m for m in mats if m["deferrable"]]
    if len(mats) >= 4:
        assert len(deferrable) <= 2


def test_same_kind_same_document():
    names = defaultdict(set)
    for item in ITEMS:
        for m in item["materials"]:
            names[m["kind"]].add(m["name"])
    for kind, seen in names.items():
        if kind == "application_form":
            continue
        if kind in KIND_FAMILY:
            words = KIND_FAMILY[kind]
            for n in seen:
                assert any(w in n for w in words), f"{kind}: {n!r} is not a {words} document"
        else:
            assert len(seen) == 1, f"item-specific kind {kind} names one document, got {seen}"


def test_halls():
    codes = [h["code"] for h in HALLS]
    assert len(HALLS) >= 3 and len(codes) == len(set(codes))
    for hall in HALLS:
        assert hall["name"] and hall["address"]
        purposes = [w["purpose"] for w in hall["windows"]]
        assert purposes.count("visit") >= 2, hall["code"]
        assert purposes.count("pickup") >= 1, hall["code"]
        numbers = [w["number"] for w in hall["windows"]]
        assert len(numbers) == len(set(numbers))
        assert all(w["daily_capacity"] >= 1 for w in hall["windows"])


@pytest.mark.parametrize("item", ITEMS, ids=item_ids(ITEMS))
def test_item_halls_exist(item):
    known = {h["code"] for h in HALLS}
    assert item["halls"], "a licence can be picked up somewhere"
    assert set(item["halls"]) <= known


def test_bundles():
    codes = {i["code"] for i in ITEMS}
    assert len(BUNDLES) >= 5
    bundle_codes = [b["code"] for b in BUNDLES]
    assert len(bundle_codes) == len(set(bundle_codes))
    for b in BUNDLES:
        assert re.match(r"^[a-z0-9-]{2,32}$", b["code"]), b["code"]
        assert b["name"] and b["description"]
        assert 2 <= len(b["items"]) <= 5, b["code"]
        assert len(set(b["items"])) == len(b["items"])
        assert set(b["items"]) <= codes, b["code"]


def test_commitments():
    with_commitment = [i for i in ITEMS if i["commitment"]]
    assert with_commitment, "at least one item under 告知承诺制"
    for item in with_commitment:
        text = item["commitment"]["text"]
        assert 150 <= len(text) <= 400, (item["code"], len(text))
        assert "承诺" in text
