"""一件事一次办: one form, one checklist and one submission for several linked cases.

A bundle application creates one draft case per item, linked by
`Case.bundle_application_id`. Shared fields (same `name` in several items) are
asked once and written into every case that has them; a material type (`kind`)
needed by several items is uploaded once and attached to each of them (the
blob is stored once). Each case is still forwarded as a case of its own, with
the `bundle` reference of docs/bureau-protocol.md.

Savings against applying item by item are computed from the catalogue:

* steps: separate = Σ steps of the items; bundled = distinct step names
  (one 申请, one 受理, one joint 现场核查 …);
* materials: separate = Σ required materials of the items; bundled = distinct
  required material kinds, where each item's application form counts once for
  the bundle's one combined form, and a document another item of the bundle
  issues (e.g. the 营业执照 of 企业设立登记) is shared inside the bureau and not
  asked for at all;
* working days: separate = Σ promised days (one after another); bundled = the
  longest chain when the items run in parallel (并联审批) and an item that needs a
  document another item issues starts when that item is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.filing import FilingRule
from portal.accounts.models import Account
from portal.bundles.models import BundleApplication
from portal.cases import service as cases
from portal.cases import states
from portal.cases.forms import clean_form, in_field_order, merge_specs
from portal.cases.models import Case
from portal.catalogue.models import Bundle, Item
from portal.clock import utcnow
from portal.errors import Conflict, Invalid, NotFound
from portal.library import service as library
from portal.materials.models import CaseFile
from portal.materials.service import attach_file, check_can_upload
from portal.materials.storage import BlobStore
from portal.materials.upload import ReceivedFile

COMBINED_FORM_KIND = "application_form"
NOT_FOUND = "没有找到该“一件事”。"
APPLICATION_NOT_FOUND = "没有找到该一件事申请。"


# --- the bundle as the catalogue describes it ------------------------------------------


def list_bundles(session: Session) -> list[Bundle]:
    return list(
        session.scalars(select(Bundle).where(Bundle.active.is_(True)).order_by(Bundle.code))
    )


def get_bundle(session: Session, *, code: str) -> Bundle:
    bundle = session.get(Bundle, code) if "\x00" not in code else None
    if bundle is None or not bundle.active:
        raise NotFound(NOT_FOUND, code="bundle_not_found")
    return bundle


def bundle_items(session: Session, bundle: Bundle) -> list[Item]:
    """The bundle's items in its order; a bundle with an inactive item cannot be applied for."""
    items = {i.code: i for i in session.scalars(select(Item).where(Item.code.in_(bundle.items)))}
    found = [items[c] for c in bundle.items if c in items and items[c].active]
    if len(found) != len(bundle.items):
        raise Conflict("该“一件事”中有事项已停止办理，请逐项申请或拨打 12345 咨询。")
    return found


def issuers(items: list[Item]) -> dict[str, Item]:
    """Material kinds that an item of the bundle issues (its licence), kind -> that item."""
    found: dict[str, Item] = {}
    for item in items:
        found.setdefault(library.licence_kind(item), item)
    return found


def _provided_by(items: list[Item], item: Item, material: dict[str, Any]) -> Item | None:
    issuer = issuers(items).get(material["kind"])
    return issuer if issuer is not None and issuer.code != item.code else None


@dataclass
class MaterialGroup:
    """One material type of the bundle's checklist, with every item that asks for it."""

    kind: str
    name: str
    entries: list[tuple[Item, dict[str, Any]]] = field(default_factory=list)
    provided_by: Item | None = None

    @property
    def required(self) -> bool:
        return any(m["required"] for _, m in self.entries)

    @property
    def deferrable(self) -> bool:
        required = [m for _, m in self.entries if m["required"]]
        return bool(required) and all(m.get("deferrable") for m in required)

    @property
    def gaozhi_items(self) -> list[Item]:
        """Items whose 告知承诺书 would replace this material."""
        return [i for i, m in self.entries if m["code"] in cases.gaozhi_replaced(i)]

    @property
    def item_names(self) -> list[str]:
        return [i.name for i, _ in self.entries]

    @property
    def note(self) -> str:
        if self.kind == COMBINED_FORM_KIND:
            return "一份联合申请书（签字或盖章）代替各事项的申请表：" + "、".join(
                m["name"] for _, m in self.entries
            )
        notes = [str(m["note"]) for _, m in self.entries if m.get("note")]
        return notes[0] if notes else ""


def material_groups(items: list[Item]) -> list[MaterialGroup]:
    """The one checklist: a group per material kind, in the order the items first ask for it."""
    groups: dict[str, MaterialGroup] = {}
    for item in items:
        for material in item.materials:
            kind = material["kind"]
            group = groups.get(kind)
            if group is None:
                name = "一件事联合申请书" if kind == COMBINED_FORM_KIND else material["name"]
                group = groups[kind] = MaterialGroup(kind=kind, name=name)
            group.entries.append((item, material))
    for group in groups.values():
        providers = {
            p.code: p for i, m in group.entries if (p := _provided_by(items, i, m)) is not None
        }
        # Shared only when every item asking for it gets it from inside the bundle.
        if providers and all(_provided_by(items, i, m) for i, m in group.entries):
            group.provided_by = next(iter(providers.values()))
    return list(groups.values())


def shared_fields(items: list[Item]) -> list[dict[str, Any]]:
    """The one form: each field name once, obeying every item's rules (forms.merge_specs)."""
    specs: dict[str, list[dict[str, Any]]] = {}
    users: dict[str, list[str]] = {}
    for item in items:
        for spec in item.fields:
            specs.setdefault(spec["name"], []).append(spec)
            users.setdefault(spec["name"], []).append(item.name)
    return [{**merge_specs(found), "used_by": users[name]} for name, found in specs.items()]


def _finish_days(item: Item, items: list[Item], memo: dict[str, int], path: tuple[str, ...]) -> int:
    if item.code in memo:
        return memo[item.code]
    waits = 0
    for material in item.materials:
        issuer = _provided_by(items, item, material) if material["required"] else None
        if issuer is not None and issuer.code not in path:
            waits = max(waits, _finish_days(issuer, items, memo, (*path, item.code)))
    memo[item.code] = waits + item.promised_days
    return memo[item.code]


def savings(items: list[Item]) -> dict[str, dict[str, int]]:
    """Steps, materials and working days applying item by item against the bundle (module doc)."""
    required = [(i, m) for i in items for m in i.materials if m["required"]]
    bundled_kinds = {m["kind"] for i, m in required if _provided_by(items, i, m) is None}
    memo: dict[str, int] = {}
    return {
        "steps": {
            "separate": sum(len(i.steps) for i in items),
            "bundled": len({s["name"] for i in items for s in i.steps}),
        },
        "materials": {"separate": len(required), "bundled": len(bundled_kinds)},
        "days": {
            "separate": sum(i.promised_days for i in items),
            "bundled": max((_finish_days(i, items, memo, ()) for i in items), default=0),
        },
    }


def bundle_summary(session: Session, bundle: Bundle) -> dict[str, Any]:
    """A bundle as the JSON API returns it."""
    items = bundle_items(session, bundle)
    return {
        "code": bundle.code,
        "name": bundle.name,
        "description": bundle.description,
        "items": [i.code for i in items],
        "savings": savings(items),
    }


# --- a citizen's application --------------------------------------------------------


def start_application(
    session: Session, *, account: Account, code: str, form: dict[str, Any] | None = None
) -> BundleApplication:
    """The application and one linked draft per item; `form` may be partial."""
    bundle = get_bundle(session, code=code)
    items = bundle_items(session, bundle)
    if not all(i.online for i in items):
        raise Conflict("该“一件事”中有事项暂不支持网上申请，请到窗口办理。", code="not_online")
    values = _checked_values(items, form or {}, partial=True)
    application = BundleApplication(account_id=account.id, bundle_code=bundle.code)
    session.add(application)
    session.flush()
    created: dict[str, Case] = {}
    for item in items:
        own = {k: v for k, v in values.items() if item.fields and _has_field(item, k)}
        case = cases.create_case(session, account=account, item_code=item.code, form=own)
        case.bundle_application_id = application.id
        created[item.code] = case
    for item in items:
        provided = {}
        for material in item.materials:
            issuer = _provided_by(items, item, material)
            if issuer is not None:
                provided[material["code"]] = {
                    "case_no": created[issuer.code].case_no,
                    "item_code": issuer.code,
                    "licence": issuer.licence_name,
                }
        created[item.code].provided_materials = provided
    session.flush()
    return application


def _has_field(item: Item, name: str) -> bool:
    return any(f["name"] == name for f in item.fields)


def _checked_values(items: list[Item], form: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Every value checked against the one form's field and each item that has it; 422
    with every problem, in the order of the one form."""
    fields = shared_fields(items)
    known = {f["name"] for f in fields}
    errors = {f"form.{k}": "本“一件事”没有这个字段" for k in form if k not in known}
    values, problems = clean_form(
        fields, {k: v for k, v in form.items() if k in known}, partial=partial
    )
    errors |= problems
    for item in items:
        own = {k: v for k, v in form.items() if _has_field(item, k)}
        _, problems = clean_form(item.fields, own, partial=partial)
        for key, message in problems.items():
            errors.setdefault(key, message)
    if errors:
        raise Invalid(in_field_order(fields, errors))
    return values


def get_own_application(
    session: Session, *, account: Account, application_id: int, for_update: bool = False
) -> BundleApplication:
    """The account's application; another account's is 404 exactly like a missing one."""
    query = select(BundleApplication).where(
        BundleApplication.id == application_id, BundleApplication.account_id == account.id
    )
    if for_update and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    application = session.scalars(query).first()
    if application is None or application.status == "withdrawn":
        raise NotFound(APPLICATION_NOT_FOUND, code="bundle_application_not_found")
    return application


def list_own_applications(session: Session, *, account: Account) -> list[BundleApplication]:
    query = (
        select(BundleApplication)
        .where(BundleApplication.account_id == account.id, BundleApplication.status != "withdrawn")
        .order_by(BundleApplication.created_at.desc(), BundleApplication.id.desc())
    )
    return list(session.scalars(query))


def application_cases(session: Session, application: BundleApplication) -> list[Case]:
    """The linked cases in the bundle's item order."""
    linked = session.scalars(
        select(Case).where(Case.bundle_application_id == application.id).order_by(Case.id)
    ).all()
    return list(linked)


def _context(session: Session, application: BundleApplication):
    bundle = session.get(Bundle, application.bundle_code)
    assert bundle is not None
    # A draft deleted before anything was sent has left the bundle; the rest stay.
    linked = [
        c
        for c in application_cases(session, application)
        if not (c.status == states.WITHDRAWN and c.submitted_at is None)
    ]
    items = {i.code: i for i in session.scalars(select(Item).where(Item.code.in_(bundle.items)))}
    ordered = [items[c.item_code] for c in linked]
    return bundle, linked, ordered


def ensure_draft(application: BundleApplication) -> None:
    if application.status != "draft":
        raise Conflict(
            "这个一件事申请已经提交，不能再统一修改。需要补正的，请到对应办件页面修改。",
            code="not_editable",
        )


def shared_values(linked: list[Case], fields: list[dict[str, Any]]) -> dict[str, Any]:
    """What the one form shows: each field's value from the first case that has one."""
    values: dict[str, Any] = {}
    for spec in fields:
        for case in linked:
            if spec["name"] in case.form:
                values[spec["name"]] = case.form[spec["name"]]
                break
    return values


def save_shared_form(
    session: Session, *, application: BundleApplication, form: dict[str, Any], replace: bool = False
) -> None:
    """Write each answer into every case that asks for it; nothing is written if any is wrong."""
    ensure_draft(application)
    _, linked, items = _context(session, application)
    _checked_values(items, form, partial=True)
    for case, item in zip(linked, items, strict=True):
        own = {k: v for k, v in form.items() if _has_field(item, k)}
        if case.status == states.WITHDRAWN:
            continue
        if own or replace:
            cases.save_form(session, case=case, item=item, form=own, replace=replace)
    application.updated_at = utcnow()


def _group(items: list[Item], kind: str) -> MaterialGroup:
    for group in material_groups(items):
        if group.kind == kind:
            if group.provided_by is not None:
                raise Conflict(
                    f"“{group.name}”由本一件事中的“{group.provided_by.name}”核发后内部共享，无需上传。",
                    code="provided_in_bundle",
                )
            return group
    raise NotFound("本“一件事”不需要这类材料。", code="material_not_found")


def _live_targets(
    linked: list[Case], items: list[Item], group: MaterialGroup
) -> list[tuple[Case, Item, dict[str, Any]]]:
    """The targets of an upload; 409 when every item asking for it was dropped."""
    found = _targets(linked, items, group)
    if not found:
        raise Conflict("需要这类材料的事项草稿都已删除，无需再上传。", code="no_target")
    return found


def _targets(
    linked: list[Case], items: list[Item], group: MaterialGroup
) -> list[tuple[Case, Item, dict[str, Any]]]:
    # A case the citizen dropped from the bundle (its draft deleted) takes no more files.
    by_code = {
        i.code: c for c, i in zip(linked, items, strict=True) if c.status != states.WITHDRAWN
    }
    return [(by_code[i.code], i, m) for i, m in group.entries if i.code in by_code]


def check_can_upload_kind(session: Session, *, application: BundleApplication, kind: str) -> None:
    """Before any byte is read: the application is a draft and the bundle asks for `kind`."""
    ensure_draft(application)
    _, linked, items = _context(session, application)
    for case, item, material in _live_targets(linked, items, _group(items, kind)):
        check_can_upload(session, case=case, item=item, material_code=material["code"])


def upload_once(
    session: Session,
    *,
    application: BundleApplication,
    account: Account,
    kind: str,
    received: ReceivedFile,
    store: BlobStore,
) -> list[CaseFile]:
    """One upload reaches every item that asks for this material type; the blob is kept once."""
    # The upload ran outside any transaction: read the application and its cases again.
    session.refresh(application, with_for_update=True)
    for case in application_cases(session, application):
        session.refresh(case)
    ensure_draft(application)
    _, linked, items = _context(session, application)
    attached = []
    for case, item, material in _live_targets(linked, items, _group(items, kind)):
        case_file = attach_file(
            session,
            case=case,
            item=item,
            material_code=material["code"],
            received=received,
            store=store,
        )
        library.keep_upload(
            session,
            account_id=account.id,
            case_no=case.case_no,
            material=material,
            case_file=case_file,
        )
        attached.append(case_file)
    application.updated_at = utcnow()
    return attached


def attach_from_library(
    session: Session,
    *,
    application: BundleApplication,
    account: Account,
    kind: str,
    document_id: int,
) -> list[CaseFile]:
    """One tap: a library document becomes a file of every item that asks for its type."""
    ensure_draft(application)
    _, linked, items = _context(session, application)
    library.usable_document(session, account=account, document_id=document_id, kind=kind)
    attached = []
    for case, item, material in _live_targets(linked, items, _group(items, kind)):
        attached.append(
            library.attach_to_case(
                session,
                account=account,
                case=case,
                item=item,
                material_code=material["code"],
                document_id=document_id,
            )
        )
    application.updated_at = utcnow()
    return attached


def remove_file(
    session: Session, *, application: BundleApplication, kind: str, sha256: str
) -> None:
    """Take a file off every item of the bundle it was attached to."""
    ensure_draft(application)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise NotFound("没有找到该文件。", code="file_not_found")
    _, linked, items = _context(session, application)
    removed = 0
    for case, _item, material in _targets(linked, items, _group(items, kind)):
        for case_file in session.scalars(
            select(CaseFile).where(
                CaseFile.case_id == case.id,
                CaseFile.material_code == material["code"],
                CaseFile.sha256 == sha256,
            )
        ):
            session.delete(case_file)
            removed += 1
    if not removed:
        raise NotFound("没有找到该文件。", code="file_not_found")
    application.updated_at = utcnow()


def group_files(
    session: Session, linked: list[Case], items: list[Item], group: MaterialGroup
) -> list[dict[str, Any]]:
    """The group's files, each once, with the items it reaches."""
    by_sha: dict[str, dict[str, Any]] = {}
    for case, item, material in _targets(linked, items, group):
        for f in session.scalars(
            select(CaseFile)
            .where(CaseFile.case_id == case.id, CaseFile.material_code == material["code"])
            .order_by(CaseFile.id)
        ):
            entry = by_sha.setdefault(
                f.sha256,
                {
                    "sha256": f.sha256,
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "size": f.size,
                    "case_no": case.case_no,
                    "file_id": f.id,
                    "items": [],
                },
            )
            entry["items"].append(item.name)
    return list(by_sha.values())


# --- submission -----------------------------------------------------------------------


@dataclass
class Plan:
    """What one submission of the bundle does to each case."""

    prereview: list[tuple[Case, Item]] = field(default_factory=list)
    formal: list[tuple[Case, Item]] = field(default_factory=list)
    gaozhi: list[tuple[Case, Item]] = field(default_factory=list)
    waiting: list[tuple[Case, Item]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.prereview or self.formal or self.gaozhi)


def plan_submission(
    linked: list[Case], items: list[Item], gaozhi_items: frozenset[str] | set[str] = frozenset()
) -> Plan:
    """Drafts go to 网上预审 where the item has it (else straight in), passed ones go formal."""
    plan = Plan()
    for case, item in zip(linked, items, strict=True):
        if case.status in (states.DRAFT, states.PASSED) and item.code in gaozhi_items:
            plan.gaozhi.append((case, item))
        elif case.status in (states.DRAFT, states.RETURNED) and item.prereview:
            plan.prereview.append((case, item))
        elif case.status in (states.DRAFT, states.PASSED):
            plan.formal.append((case, item))
        elif case.status in (states.PREREVIEW,):
            plan.waiting.append((case, item))
    return plan


def _bundle_errors(exc: Invalid, item: Item, groups: dict[str, MaterialGroup]) -> dict[str, str]:
    kinds = {m["code"]: m["kind"] for m in item.materials}
    out: dict[str, str] = {}
    for key, message in exc.fields.items():
        if key.startswith("materials."):
            kind = kinds.get(key.split(".", 1)[1], "")
            group = groups.get(kind)
            name = group.name if group else key
            tail = "，或勾选容缺受理并签署承诺书" if "容缺" in message else ""
            out[f"materials.{kind}"] = f"请上传“{name}”{tail}"
        elif key.startswith("commitment"):
            out[key] = f"{item.name}：{message}"
        else:
            out[key] = message
    return out


def _in_page_order(
    errors: dict[str, str], items: list[Item], groups: dict[str, MaterialGroup]
) -> dict[str, str]:
    """Problems as the review page shows them: the one form, the checklist, the promises."""
    keys = [f"form.{f['name']}" for f in shared_fields(items)] + [f"materials.{k}" for k in groups]
    position = {key: i for i, key in enumerate(keys)}
    return dict(sorted(errors.items(), key=lambda kv: position.get(kv[0], len(position))))


def submit_application(
    session: Session,
    *,
    application: BundleApplication,
    account: Account,
    rule: FilingRule,
    deferred_kinds: list[str] | None = None,
    accepted: bool = False,
    gaozhi_items: list[str] | None = None,
    gaozhi_accepted: bool = False,
) -> Plan:
    """The one submission: every case that can move now does, each as a case of its own.

    All or nothing: when any case is incomplete, a 422 lists every problem and the
    caller's transaction rolls back, so no case of the bundle is sent half-way.
    """
    bundle, linked, items = _context(session, application)
    groups = {g.kind: g for g in material_groups(items)}
    deferred_kinds = list(dict.fromkeys(deferred_kinds or []))
    chosen_gaozhi = set(gaozhi_items or [])
    errors: dict[str, str] = {}
    for kind in deferred_kinds:
        group = groups.get(kind)
        if group is None or not group.deferrable or group.provided_by is not None:
            errors["commitment.deferred_materials"] = f"材料类型 {kind} 不在可容缺材料之列"
    for code in chosen_gaozhi:
        if code not in {i.code for i in items if i.commitment_text}:
            errors["commitment.gaozhi_items"] = f"事项 {code} 不在本一件事中，或不实行告知承诺制"
    if errors:
        raise Invalid(errors)
    plan = plan_submission(linked, items, chosen_gaozhi)
    if plan.empty:
        raise Conflict("目前没有可以提交的事项：请等待网上预审结果，或到办件页面补正。")
    for case, item in plan.prereview:
        try:
            cases.submit_for_prereview(session, case=case, account=account, rule=rule)
        except Invalid as exc:
            errors |= _bundle_errors(exc, item, groups)
    for case, item in plan.formal:
        files = cases.files_by_material(session, case=case)
        deferred = [
            m["code"]
            for m in item.materials
            if m["kind"] in deferred_kinds
            and m.get("deferrable")
            and m["required"]
            and not files.get(m["code"])
        ]
        try:
            cases.submit_formally(
                session,
                case=case,
                account=account,
                rule=rule,
                deferred=deferred,
                accepted=accepted,
            )
        except Invalid as exc:
            errors |= _bundle_errors(exc, item, groups)
    for case, item in plan.gaozhi:
        try:
            cases.submit_formally(
                session,
                case=case,
                account=account,
                rule=rule,
                accepted=gaozhi_accepted,
                kind="gaozhi",
            )
        except Invalid as exc:
            found = _bundle_errors(exc, item, groups)
            if "commitment.accepted" in found:  # its own checkbox on the page
                found["commitment.gaozhi_accepted"] = found.pop("commitment.accepted")
            errors |= found
    if errors:
        raise Invalid(_in_page_order(errors, items, groups), "还有必填内容或材料没有完成。")
    if application.status == "draft":
        application.status = "submitted"
        application.submitted_at = utcnow()
    application.updated_at = utcnow()
    return plan


def withdraw_draft(session: Session, *, application: BundleApplication) -> None:
    """Delete a bundle that was never submitted: its drafts close too."""
    ensure_draft(application)
    for case in application_cases(session, application):
        if case.status == states.DRAFT:
            cases.withdraw_case(session, case=case, reason="删除一件事草稿")
    application.status = "withdrawn"
    application.updated_at = utcnow()


# --- reading ----------------------------------------------------------------------------


def progress(linked: list[Case]) -> dict[str, int]:
    return {
        "total": len(linked),
        "finished": sum(1 for c in linked if c.status in states.FINISHED),
        "approved": sum(1 for c in linked if c.status == states.APPROVED),
    }


def application_view(session: Session, *, application: BundleApplication) -> dict[str, Any]:
    """An application as the JSON API returns it: the one form, the one checklist, the cases."""
    bundle, linked, items = _context(session, application)
    fields = shared_fields(items)
    groups = material_groups(items)
    return {
        "id": application.id,
        "bundle": {"code": bundle.code, "name": bundle.name},
        "status": application.status,
        "created_at": application.created_at,
        "submitted_at": application.submitted_at,
        "form": shared_values(linked, fields),
        "fields": [
            {
                k: spec.get(k)
                for k in (
                    "name",
                    "label",
                    "type",
                    "required",
                    "used_by",
                    "min",
                    "max",
                    "min_length",
                    "max_length",
                )
            }
            for spec in fields
        ],
        "materials": [
            {
                "kind": g.kind,
                "name": g.name,
                "required": g.required,
                "deferrable": g.deferrable,
                "items": [i.code for i, _ in g.entries],
                "provided_by": g.provided_by.code if g.provided_by else None,
                "files": [
                    {k: f[k] for k in ("filename", "content_type", "size", "sha256")}
                    for f in group_files(session, linked, items, g)
                ],
            }
            for g in groups
        ],
        "cases": [
            {
                "case_no": c.case_no,
                "item_code": c.item_code,
                "item_name": i.name,
                "status": c.status,
                "status_label": states.STATUS_LABELS[c.status],
                "due_date": c.due_date,
            }
            for c, i in zip(linked, items, strict=True)
        ],
        "progress": progress(linked),
    }
