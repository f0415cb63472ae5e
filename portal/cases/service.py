"""Cases: drafts, their form and materials, submission for pre-review or formally, withdrawal."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.accounts import authorisations, prefill
from portal.accounts.filing import FilingRule
from portal.accounts.models import Account
from portal.cases import states
from portal.cases.forms import clean_form, display_value, form_problems, missing_fields
from portal.cases.models import Case, CaseCounter, TimelineEntry
from portal.catalogue.models import Item
from portal.catalogue.service import find_item, get_item
from portal.clock import (
    add_working_days,
    rfc3339,
    span_official,
    today_cst,
    utcnow,
    working_days_left,
)
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange import payloads
from portal.licences import kinds
from portal.materials.models import CaseFile

CASE_PREFIX = "WJ"
DEFER_WORKING_DAYS = 10  # 容缺: deferred materials are due this many working days after submission
NOT_FOUND_MESSAGE = "没有找到该办件。"

# 告知承诺制: the written promise replaces the listed proofs, except the materials that say
# who applies and for what (docs/bureau-protocol.md, "告知承诺").
GAOZHI_KEPT_KINDS = frozenset(
    {"application_form", "id_card", "business_licence", "power_of_attorney"}
)

RONGQUE_TEXT = (
    "本人（本单位）自愿申请容缺受理，郑重承诺：已提交的申请材料真实、合法、有效；"
    "对容缺的材料，将在承诺期限内补齐并提交；逾期未补交或补交材料不符合要求的，"
    "同意审批机关依法终止办理或撤销已作出的决定，并承担由此产生的一切法律责任。"
)


# --- numbers and lookup -------------------------------------------------------------


def next_case_no(session: Session) -> str:
    """WJ + today's CST date + a per-day sequence, unique across processes."""
    day = today_cst().strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(CaseCounter)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=["day"], set_={"last": CaseCounter.last + 1})
        .returning(CaseCounter.last)
    )
    number = session.execute(statement).scalar_one()
    return f"{CASE_PREFIX}{day}{number:06d}"


def get_own_case(
    session: Session, *, account: Account, case_no: str, for_update: bool = False
) -> Case:
    """The account's case; another account's case is 404 exactly like a missing one."""
    if "\x00" in case_no:  # PostgreSQL refuses NUL in text: a 404, not a 500
        raise NotFound(NOT_FOUND_MESSAGE, code="case_not_found")
    query = select(Case).where(Case.case_no == case_no, _visible_to(account))
    if for_update and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    case = session.scalars(query).first()
    if case is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="case_not_found")
    return case


def _visible_to(account: Account):
    """The account's cases: those it filed, and those an agent filed in its name."""
    return or_(Case.account_id == account.id, Case.on_behalf_of_id == account.id)


def item_of(session: Session, case: Case) -> Item:
    """The case's item as its application kind files it (延续 has its own form, materials
    and time limits: portal.licences.kinds); the item itself for a new application."""
    return kinds.item_for_case(session, case)


def list_own_cases(session: Session, *, account: Account) -> list[Case]:
    query = (
        select(Case)
        .where(_visible_to(account), Case.status != states.WITHDRAWN)
        .order_by(Case.created_at.desc(), Case.id.desc())
    )
    return list(session.scalars(query))


def list_withdrawn_cases(session: Session, *, account: Account) -> list[Case]:
    query = (
        select(Case)
        .where(Case.account_id == account.id, Case.status == states.WITHDRAWN)
        .order_by(Case.created_at.desc())
    )
    return list(session.scalars(query))


# --- drafts ------------------------------------------------------------------------


def create_case(
    session: Session,
    *,
    account: Account,
    item_code: str,
    form: dict[str, Any] | None = None,
    on_behalf_of: str | None = None,
) -> Case:
    """A new draft for an item that can be applied for online; `on_behalf_of` (a USCC
    of the account's subjects) files it for that enterprise under its authorisation."""
    item = get_item(session, code=item_code)
    if not item.online:
        raise Conflict("该事项暂不支持网上申请，请到窗口办理。", code="not_online")
    enterprise = authorisation = None
    if on_behalf_of:
        enterprise, authorisation = authorisations.authorisation_for(
            session, agent=account, uscc=on_behalf_of, item_code=item.code
        )
    form = prefill.prefilled(item.fields, account=account, enterprise=enterprise, form=form)
    values, errors = clean_form(item.fields, form, partial=True)
    if errors:
        raise Invalid(errors)
    case = Case(
        case_no=next_case_no(session),
        account_id=account.id,
        item_code=item.code,
        form=values,
        on_behalf_of_id=enterprise.id if enterprise else None,
        authorisation_id=authorisation.id if authorisation else None,
    )
    session.add(case)
    session.flush()
    states.record(
        session, case, type="case.created", label="创建草稿", detail=item.name, source="citizen"
    )
    return case


def untouched_draft(session: Session, *, account: Account, item_code: str) -> Case | None:
    """The account's newest draft of this item with nothing filled in and no file, if any.

    A second tap on 在线申请 (or the back button and a tap again) returns it instead
    of leaving a trail of empty drafts.
    """
    has_files = select(CaseFile.id).where(CaseFile.case_id == Case.id).exists()
    query = (
        select(Case)
        .where(
            Case.account_id == account.id,
            Case.item_code == item_code,
            Case.application_kind == "new",  # a renewal's draft is not the item's blank one
            Case.status == states.DRAFT,
            Case.bundle_application_id.is_(None),
            ~has_files,
        )
        .order_by(Case.id.desc())
        .limit(5)
    )
    item = find_item(session, item_code)
    # Untouched: nothing but what the prefill put there (portal/accounts/prefill.py).
    blank = prefill.prefilled(item.fields, account=account) if item is not None else {}
    return next((case for case in session.scalars(query) if case.form in ({}, blank)), None)


def open_drafts(session: Session, *, account: Account, item_code: str) -> list[Case]:
    """The drafts this account started of the item as a new application, outside any
    一件事, last saved first: what the item page offers to continue before a new one."""
    query = (
        select(Case)
        .where(
            Case.account_id == account.id,
            Case.item_code == item_code,
            Case.application_kind == "new",  # a renewal's draft is another application
            Case.status == states.DRAFT,
            Case.bundle_application_id.is_(None),
        )
        .order_by(Case.updated_at.desc(), Case.id.desc())
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class StillNeeded:
    """What a draft lacks before it can be submitted: required fields, required materials."""

    fields: int
    materials: int

    @property
    def complete(self) -> bool:
        return not (self.fields or self.materials)

    @property
    def text(self) -> str:
        parts = [f"{self.fields} 项信息"] if self.fields else []
        if self.materials:
            parts.append(f"{self.materials} 份材料")
        return "还差：" + "、".join(parts) if parts else "已填写完整，可以提交"


def still_needed(session: Session, drafts: list[tuple[Case, Item]]) -> dict[int, StillNeeded]:
    """StillNeeded of each (draft, its item as filed), by case id; the files in one query.

    A material a 一件事 shares from another case (provided_materials) needs no file here,
    as at submission (missing_materials).
    """
    uploaded: dict[int, set[str]] = defaultdict(set)
    ids = [case.id for case, _ in drafts]
    if ids:
        query = select(CaseFile.case_id, CaseFile.material_code).where(CaseFile.case_id.in_(ids))
        for case_id, code in session.execute(query):
            uploaded[case_id].add(code)
    needed = {}
    for case, item in drafts:
        have = uploaded[case.id] | set(case.provided_materials or {})
        needed[case.id] = StillNeeded(
            fields=len(missing_fields(item.fields, case.form)),
            materials=sum(1 for m in item.materials if m["required"] and m["code"] not in have),
        )
    return needed


ensure_editable = states.require_editable  # the rule lives in the state table


def save_form(
    session: Session, *, case: Case, item: Item, form: dict[str, Any], replace: bool = False
) -> Case:
    """Merge (or replace) form values; every value is checked by its field's type."""
    ensure_editable(case)
    values, errors = clean_form(item.fields, form, partial=True)
    if errors:
        raise Invalid(errors)
    merged = {} if replace else dict(case.form)
    for name in form:
        merged.pop(name, None)
    merged.update(values)
    case.form = merged
    case.updated_at = utcnow()
    return case


def files_by_material(session: Session, *, case: Case) -> dict[str, list[CaseFile]]:
    grouped: dict[str, list[CaseFile]] = defaultdict(list)
    query = select(CaseFile).where(CaseFile.case_id == case.id).order_by(CaseFile.id)
    for f in session.scalars(query):
        grouped[f.material_code].append(f)
    return grouped


# --- completeness and submission ----------------------------------------------------


def gaozhi_replaced(item: Item) -> list[str]:
    """Codes of the materials the 告知承诺书 replaces; empty when the item has no such regime."""
    if not item.commitment_text:
        return []
    return [m["code"] for m in item.materials if m["kind"] not in GAOZHI_KEPT_KINDS]


def missing_materials(
    item: Item,
    files: dict[str, list[CaseFile]],
    *,
    allow_deferrable: bool,
    skip: frozenset[str] | set[str] = frozenset(),
) -> dict[str, str]:
    """Required materials without a file; `skip` needs none (shared in a bundle, 告知承诺)."""
    problems = {}
    for m in item.materials:
        if not m["required"] or files.get(m["code"]) or m["code"] in skip:
            continue
        if allow_deferrable and m.get("deferrable"):
            continue
        problems[f"materials.{m['code']}"] = f"请上传“{m['name']}”"
    return problems


def check_filing(
    session: Session, *, case: Case, account: Account, rule: FilingRule, stage: str
) -> None:
    """identity.md: who may file this case now (403 verification_required otherwise).
    A case filed for an enterprise also needs its authorisation still valid, and for
    formal submission both sides verified at level 2 where a platform exists."""
    by_agent = case.on_behalf_of_id is not None and account.id == case.account_id
    rule.check(account, "prereview" if by_agent else stage)
    if by_agent:
        authorisations.check_still_authorised(
            session, case=case, agent=account, need_level=rule.sso and stage == "formal"
        )


def submit_for_prereview(
    session: Session, *, case: Case, account: Account, rule: FilingRule
) -> Case:
    """Send the case to 网上预审: first round from a draft, next round after a return."""
    item = item_of(session, case)
    if not item.prereview:
        raise Conflict("该事项不需要网上预审，请直接提交申请。", code="no_prereview")
    if not states.allowed(case, "prereview.submitted"):
        raise Conflict(
            f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，不能提交预审。",
            code="wrong_status",
        )
    check_filing(session, case=case, account=account, rule=rule, stage="prereview")
    files = files_by_material(session, case=case)
    # Every stored value is checked again: one saved before a rule was tightened stops here.
    errors = form_problems(item.fields, case.form) | missing_materials(
        item, files, allow_deferrable=True, skip=set(case.provided_materials or {})
    )
    if errors:
        raise Invalid(errors, "还有必填内容或材料没有完成。")
    case.prereview_round += 1
    case.corrections = {}
    if case.submitted_at is None:
        case.submitted_at = utcnow()
    data, blobs = payloads.submission_data(
        session, case=case, item=item, account=account, stage="prereview", files=files
    )
    states.apply(
        session,
        case,
        "prereview.submitted",
        detail=f"第 {case.prereview_round} 轮预审",
        event_data=data,
        blobs=blobs,
    )
    return case


def submit_formally(
    session: Session,
    *,
    case: Case,
    account: Account,
    rule: FilingRule,
    deferred: list[str] | None = None,
    accepted: bool = False,
    kind: str = "rongque",
) -> Case:
    """不见面 formal submission; deferrable materials may be missing only under a signed commitment.

    `kind="gaozhi"` submits under 告知承诺制: the signed promise replaces the proofs
    `gaozhi_replaced` lists, and no 网上预审 is needed first.
    """
    item = item_of(session, case)
    gaozhi = kind == "gaozhi"
    if kind not in ("rongque", "gaozhi"):
        raise Invalid(
            {"commitment.kind": "承诺方式只能是 rongque（容缺受理）或 gaozhi（告知承诺）"}
        )
    if gaozhi and not item.commitment_text:
        raise Invalid({"commitment.kind": "本事项不实行告知承诺制，请按材料清单提交"})
    if case.status == states.DRAFT and item.prereview and not gaozhi:
        raise Conflict("该事项需要先通过网上预审，才能正式提交。", code="prereview_required")
    if not states.allowed(case, "formal.submitted"):
        raise Conflict(
            f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，不能正式提交。",
            code="wrong_status",
        )
    check_filing(session, case=case, account=account, rule=rule, stage="formal")
    files = files_by_material(session, case=case)
    deferred = list(dict.fromkeys(deferred or []))
    pledge: dict[str, str] = {}  # listed last, as the review page shows the promise last
    by_code = {m["code"]: m for m in item.materials}
    replaced = gaozhi_replaced(item) if gaozhi else []
    if gaozhi:
        if deferred:
            pledge["commitment.deferred_materials"] = "选择告知承诺后无需再容缺，请不要同时勾选"
        if not accepted:
            pledge["commitment.accepted"] = "告知承诺制办理须阅读并同意告知承诺书"
    for code in deferred if not gaozhi else []:
        material = by_code.get(code)
        if material is None or not material.get("deferrable"):
            pledge["commitment.deferred_materials"] = f"材料 {code} 不在可容缺材料之列"
        elif files.get(code):
            pledge["commitment.deferred_materials"] = f"材料“{material['name']}”已上传，无需容缺"
    if deferred and not gaozhi and not accepted:
        pledge["commitment.accepted"] = "容缺受理须阅读并同意承诺书"
    # Every stored value is checked again: one saved before a rule was tightened stops here.
    errors = form_problems(item.fields, case.form)
    skip = set(case.provided_materials or {}) | set(replaced)
    for key, message in missing_materials(item, files, allow_deferrable=False, skip=skip).items():
        code = key.split(".", 1)[1]
        if code in deferred:
            continue
        if by_code[code].get("deferrable"):
            message += "，或勾选容缺受理并签署承诺书"
        errors[key] = message
    errors |= pledge
    if errors:
        raise Invalid(errors, "还有必填内容或材料没有完成。")
    now = utcnow()
    if gaozhi:
        case.commitment = {
            "kind": "gaozhi",
            "text": item.commitment_text,
            "signed_at": rfc3339(now),
            "deferred_materials": [],
            "replaced_materials": [c for c in replaced if not files.get(c)],
        }
    elif deferred:
        start = today_cst()
        due = add_working_days(start, DEFER_WORKING_DAYS)
        # The basis lets `portal calendar load` recompute a deadline that was provisional.
        basis = {"start": start.isoformat(), "days": DEFER_WORKING_DAYS}
        provisional = not span_official(start, due)
        case.commitment = {
            "kind": "rongque",
            "text": RONGQUE_TEXT,
            "signed_at": rfc3339(now),
            "deferred_materials": [
                {"code": c, "due_date": due.isoformat(), "basis": basis, "provisional": provisional}
                for c in deferred
            ],
        }
    else:
        case.commitment = None
    case.submitted_at = now
    data, blobs = payloads.submission_data(
        session, case=case, item=item, account=account, stage="formal", files=files
    )
    detail = "不见面审批，网上正式提交"
    if gaozhi:
        detail += "；告知承诺制，已签署告知承诺书"
    elif deferred:
        detail += f"；容缺 {len(deferred)} 项材料，承诺补交"
    states.apply(session, case, "formal.submitted", detail=detail, event_data=data, blobs=blobs)
    return case


# --- 补正 after the formal submission (§32) -----------------------------------------------


def correction_missing(case: Case, item: Item, files: dict[str, list[CaseFile]]) -> dict[str, str]:
    """Named materials without a file uploaded since the request: field -> 中文 reason."""
    kept = set((case.correction or {}).get("kept", []))
    names = {m["code"]: m["name"] for m in item.materials}
    return {
        f"materials.{code}": f"请为“{names.get(code, code)}”上传补正后的文件"
        for code in case.corrections or {}
        if not any(f.id not in kept for f in files.get(code, []))
    }


def submit_correction(session: Session, *, case: Case, account: Account) -> Case:
    """Hand in the corrections (case.corrected): every named material with a new file."""
    item = item_of(session, case)
    if not states.allowed(case, "case.corrected"):
        raise Conflict(
            f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，没有需要补正的材料。",
            code="wrong_status",
        )
    files = files_by_material(session, case=case)
    errors = correction_missing(case, item, files)
    if errors:
        raise Invalid(errors, "还有要求补正的材料没有上传新文件。")
    named = [m for m in item.materials if m["code"] in (case.corrections or {})]
    case.correction_round += 1
    case.correction = {**(case.correction or {}), "handed_in_at": rfc3339(utcnow())}
    case.corrections = {}
    data, blobs = payloads.correction_data(
        session, case=case, account=account, materials=named, files=files
    )
    states.apply(
        session,
        case,
        "case.corrected",
        detail=f"第 {case.correction_round} 次补正：" + "、".join(m["name"] for m in named),
        event_data=data,
        blobs=blobs,
    )
    return case


# --- 容缺补交 --------------------------------------------------------------------------


def outstanding_deferred(case: Case) -> dict[str, str]:
    """容缺 materials not yet handed in: code -> the date they are due."""
    commitment = case.commitment or {}
    if commitment.get("kind") != "rongque":
        return {}
    return {
        d["code"]: d["due_date"]
        for d in commitment.get("deferred_materials", [])
        if not d.get("supplemented_at")
    }


def check_can_supplement(session: Session, *, case: Case, item: Item, material_code: str) -> dict:
    """Before any byte is read: the material is an outstanding 容缺 one of a submitted case."""
    material = item.material(material_code)
    if material is None:
        raise NotFound("该事项没有这项材料。", code="material_not_found")
    if not states.allowed(case, "materials.supplemented"):
        raise Conflict(
            f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，不能补交材料。",
            code="wrong_status",
        )
    if material_code not in outstanding_deferred(case):
        raise Conflict(f"“{material['name']}”不是待补交的容缺材料。", code="not_deferred")
    return material


def attach_supplement_file(
    session: Session, *, case: Case, item: Item, material_code: str, received, store
) -> CaseFile:
    """Keep a file for a deferred material; it leaves with `supplement_materials`."""
    from portal.materials.service import record_file  # materials imports this module

    session.refresh(case, with_for_update=True)  # the upload ran outside any transaction
    check_can_supplement(session, case=case, item=item, material_code=material_code)
    return record_file(session, store, case=case, material_code=material_code, received=received)


def remove_supplement_file(session: Session, *, case: Case, item: Item, file_id: int) -> None:
    """Take back a file of a deferred material before it is handed in."""
    case_file = session.scalars(
        select(CaseFile).where(CaseFile.id == file_id, CaseFile.case_id == case.id)
    ).first()
    if case_file is None:
        raise NotFound("没有找到该文件。", code="file_not_found")
    check_can_supplement(session, case=case, item=item, material_code=case_file.material_code)
    session.delete(case_file)


def supplement_materials(session: Session, *, case: Case, account: Account) -> Case:
    """补交: send every outstanding 容缺 material that now has files (materials.supplemented)."""
    item = item_of(session, case)
    if not states.allowed(case, "materials.supplemented"):
        raise Conflict(
            f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，不能补交材料。",
            code="wrong_status",
        )
    outstanding = outstanding_deferred(case)
    files = files_by_material(session, case=case)
    ready = [m for m in item.materials if m["code"] in outstanding and files.get(m["code"])]
    if not ready:
        raise Invalid({"supplement": "请先上传要补交的容缺材料"}, "还没有上传要补交的材料。")
    data, blobs = payloads.supplement_data(ready, files)
    stamp = rfc3339(utcnow())
    done = {m["code"] for m in ready}
    commitment = dict(case.commitment or {})
    commitment["deferred_materials"] = [
        {**d, "supplemented_at": stamp} if d["code"] in done else d
        for d in commitment.get("deferred_materials", [])
    ]
    case.commitment = commitment  # a new dict, so the JSON column is seen as changed
    states.apply(
        session,
        case,
        "materials.supplemented",
        detail="补交：" + "、".join(m["name"] for m in ready),
        event_data=data,
        blobs=blobs,
    )
    return case


def withdraw_case(session: Session, *, case: Case, reason: str) -> Case:
    """Withdraw: a draft just closes; a case the bureau knows of is withdrawn there too."""
    reason = (reason or "").strip()[:500]
    if case.status == states.DRAFT:
        states.apply(session, case, "draft.withdrawn", detail=reason)
        return case
    if not states.allowed(case, "case.withdrawn"):
        raise Conflict(
            "办件已受理或已办结，不能撤回。如需帮助请拨打 12345。", code="not_withdrawable"
        )
    states.apply(
        session,
        case,
        "case.withdrawn",
        detail=reason or "申请人撤回",
        event_data=payloads.withdrawal_data(reason or "申请人撤回"),
    )
    case.withdrawn_reason = reason or "申请人撤回"
    return case


# --- reading ------------------------------------------------------------------------


def timeline(session: Session, *, case: Case) -> list[TimelineEntry]:
    """Every entry of the case, newest first.

    Ordered by the order the portal recorded them, not by their times: a bureau
    event carries the bureau's clock at second precision, the portal's own entries
    its clock in microseconds, so sorting by time could show a decision before the
    choice the citizen made a moment earlier.
    """
    query = (
        select(TimelineEntry)
        .where(TimelineEntry.case_id == case.id)
        .order_by(TimelineEntry.id.desc())
    )
    return list(session.scalars(query))


def answers(item: Item, case: Case) -> list[tuple[dict[str, Any], str]]:
    """Each form field with how its value reads, for check-your-answers."""
    return [(spec, display_value(spec, case.form.get(spec["name"]))) for spec in item.fields]


def due_info(case: Case) -> dict[str, Any] | None:
    if case.due_date is None:
        return None
    suspension = case.suspension
    if suspension and suspension.get("left") is not None:
        left = suspension["left"]  # the countdown stands still while the clock is suspended
    else:
        left = working_days_left(today_cst(), case.due_date)
    return {
        "date": case.due_date,
        "left": left,
        "provisional": case.due_date_provisional,
        "suspended": bool(suspension),
    }
