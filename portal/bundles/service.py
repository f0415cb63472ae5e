"""一件事一次办: one form, one checklist and one submission for several linked cases.

A bundle application creates one draft case per item, linked by
`Case.bundle_application_id`. Shared fields (same `name` in several items) are
asked once and written into every case that has them; a material type (`kind`)
needed by several items is uploaded once and attached to each of them (the
blob is stored once). Each case is still forwarded as a case of its own, with
the `bundle` reference of docs/bureau-protocol.md.

The one form, the one checklist, the savings and the submission plan are pure
functions of the items and cases, in portal/bundles/checklist.py; this module keeps
the use cases that read and write them.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.filing import FilingRule
from portal.accounts.models import Account
from portal.bundles import checklist
from portal.bundles.models import DRAFT, SUBMITTED, WITHDRAWN, BundleApplication
from portal.cases import service as cases
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue import service as catalogue
from portal.catalogue.models import Bundle, Item
from portal.clock import utcnow
from portal.errors import Conflict, Invalid, NotFound
from portal.library import service as library
from portal.materials.models import CaseFile
from portal.materials.service import attach_file, check_can_upload
from portal.materials.storage import BlobStore
from portal.materials.upload import ReceivedFile

NOT_FOUND = "没有找到该“一件事”。"
APPLICATION_NOT_FOUND = "没有找到该一件事申请。"


# --- the bundle as the catalogue describes it ------------------------------------------


def list_bundles(session: Session) -> list[Bundle]:
    return catalogue.list_bundles(session)  # the in-memory catalogue (catalogue/cache.py)


def get_bundle(session: Session, *, code: str) -> Bundle:
    bundle = catalogue.find_bundle(session, code) if "\x00" not in code else None
    if bundle is None or not bundle.active:
        raise NotFound(NOT_FOUND, code="bundle_not_found")
    return bundle


def bundle_items(session: Session, bundle: Bundle) -> list[Item]:
    """The bundle's items in its order; a bundle with an inactive item cannot be applied for."""
    items = catalogue.items_by_code(session, bundle.items)
    found = [items[c] for c in bundle.items if c in items and items[c].active]
    if len(found) != len(bundle.items):
        raise Conflict("该“一件事”中有事项已停止办理，请逐项申请或拨打 12345 咨询。")
    return found


def bundle_summary(session: Session, bundle: Bundle) -> dict[str, Any]:
    """A bundle as the JSON API returns it."""
    items = bundle_items(session, bundle)
    return {
        "code": bundle.code,
        "name": bundle.name,
        "description": bundle.description,
        "items": [i.code for i in items],
        "savings": checklist.savings(items),
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
    values = checklist.checked_values(items, form or {}, partial=True)
    application = BundleApplication(account_id=account.id, bundle_code=bundle.code)
    session.add(application)
    session.flush()
    created: dict[str, Case] = {}
    for item in items:
        own = {k: v for k, v in values.items() if item.fields and checklist.has_field(item, k)}
        case = cases.create_case(session, account=account, item_code=item.code, form=own)
        case.bundle_application_id = application.id
        created[item.code] = case
    for item in items:
        provided = {}
        for material in item.materials:
            issuer = checklist.provided_by(items, item, material)
            if issuer is not None:
                provided[material["code"]] = {
                    "case_no": created[issuer.code].case_no,
                    "item_code": issuer.code,
                    "licence": issuer.licence_name,
                }
        created[item.code].provided_materials = provided
    session.flush()
    return application


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
    if application is None or application.status == WITHDRAWN:
        raise NotFound(APPLICATION_NOT_FOUND, code="bundle_application_not_found")
    return application


def list_own_applications(session: Session, *, account: Account) -> list[BundleApplication]:
    query = (
        select(BundleApplication)
        .where(BundleApplication.account_id == account.id, BundleApplication.status != WITHDRAWN)
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
    bundle = catalogue.find_bundle(session, application.bundle_code)
    assert bundle is not None
    # A draft deleted before anything was sent has left the bundle; the rest stay.
    linked = [c for c in application_cases(session, application) if not states.deleted_draft(c)]
    items = catalogue.items_by_code(session, bundle.items)
    ordered = [items[c.item_code] for c in linked]
    return bundle, linked, ordered


def ensure_draft(application: BundleApplication) -> None:
    if application.status != DRAFT:
        raise Conflict(
            "这个一件事申请已经提交，不能再统一修改。需要补正的，请到对应办件页面修改。",
            code="not_editable",
        )


def save_shared_form(
    session: Session, *, application: BundleApplication, form: dict[str, Any], replace: bool = False
) -> None:
    """Write each answer into every case that asks for it; nothing is written if any is wrong."""
    ensure_draft(application)
    _, linked, items = _context(session, application)
    checklist.checked_values(items, form, partial=True)
    for case, item in zip(linked, items, strict=True):
        own = {k: v for k, v in form.items() if checklist.has_field(item, k)}
        if states.withdrawn(case):  # stays in the bundle, takes no more answers
            continue
        if own or replace:
            cases.save_form(session, case=case, item=item, form=own, replace=replace)
    application.updated_at = utcnow()


def check_can_upload_kind(session: Session, *, application: BundleApplication, kind: str) -> None:
    """Before any byte is read: the application is a draft and the bundle asks for `kind`."""
    ensure_draft(application)
    _, linked, items = _context(session, application)
    for case, item, material in checklist.live_targets(
        linked, items, checklist.group_of(items, kind)
    ):
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
    for case, item, material in checklist.live_targets(
        linked, items, checklist.group_of(items, kind)
    ):
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
    for case, item, material in checklist.live_targets(
        linked, items, checklist.group_of(items, kind)
    ):
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
    for case, _item, material in checklist.targets(linked, items, checklist.group_of(items, kind)):
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
    session: Session, linked: list[Case], items: list[Item], group: checklist.MaterialGroup
) -> list[dict[str, Any]]:
    """The group's files, each once, with the items it reaches."""
    by_sha: dict[str, dict[str, Any]] = {}
    for case, item, material in checklist.targets(linked, items, group):
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
) -> checklist.Plan:
    """The one submission: every case that can move now does, each as a case of its own.

    All or nothing: when any case is incomplete, a 422 lists every problem and the
    caller's transaction rolls back, so no case of the bundle is sent half-way.
    """
    bundle, linked, items = _context(session, application)
    groups = {g.kind: g for g in checklist.material_groups(items)}
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
    plan = checklist.plan_submission(linked, items, chosen_gaozhi)
    if plan.empty:
        raise Conflict("目前没有可以提交的事项：请等待网上预审结果，或到办件页面补正。")
    for case, item in plan.prereview:
        try:
            cases.submit_for_prereview(session, case=case, account=account, rule=rule)
        except Invalid as exc:
            errors |= checklist.bundle_errors(exc, item, groups)
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
            errors |= checklist.bundle_errors(exc, item, groups)
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
            found = checklist.bundle_errors(exc, item, groups)
            if "commitment.accepted" in found:  # its own checkbox on the page
                found["commitment.gaozhi_accepted"] = found.pop("commitment.accepted")
            errors |= found
    if errors:
        raise Invalid(
            checklist.in_page_order(errors, items, groups), "还有必填内容或材料没有完成。"
        )
    if application.status == DRAFT:
        application.status = SUBMITTED
        application.submitted_at = utcnow()
    application.updated_at = utcnow()
    return plan


def withdraw_draft(session: Session, *, application: BundleApplication) -> None:
    """Delete a bundle that was never submitted: its drafts close too."""
    ensure_draft(application)
    for case in application_cases(session, application):
        if states.allowed(case, "draft.withdrawn"):
            cases.withdraw_case(session, case=case, reason="删除一件事草稿")
    application.status = WITHDRAWN
    application.updated_at = utcnow()


# --- reading ----------------------------------------------------------------------------


def application_view(session: Session, *, application: BundleApplication) -> dict[str, Any]:
    """An application as the JSON API returns it: the one form, the one checklist, the cases."""
    bundle, linked, items = _context(session, application)
    fields = checklist.shared_fields(items)
    groups = checklist.material_groups(items)
    return {
        "id": application.id,
        "bundle": {"code": bundle.code, "name": bundle.name},
        "status": application.status,
        "created_at": application.created_at,
        "submitted_at": application.submitted_at,
        "form": checklist.shared_values(linked, fields),
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
        "progress": checklist.progress(linked),
    }
