"""What the bundle pages show and allow, computed in Python so templates only display."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.bundles import checklist, service
from portal.bundles.models import DRAFT, SUBMITTED, WITHDRAWN, BundleApplication
from portal.cases import states
from portal.cases.forms import display_value, missing_fields
from portal.cases.service import DEFER_WORKING_DAYS, RONGQUE_TEXT, due_info, files_by_material
from portal.catalogue.models import Bundle, Item
from portal.library import service as library

SAVING_ROWS = (
    ("steps", "办理环节", "个"),
    ("materials", "申请材料", "份"),
    ("days", "承诺办结时间", "个工作日"),
)
APPLICATION_STATUS = {DRAFT: "草稿", SUBMITTED: "已提交", WITHDRAWN: "已删除"}


def savings_rows(savings: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """One row per measure, with what the bundle saves."""
    return [
        {
            "key": key,
            "label": label,
            "unit": unit,
            "separate": savings[key]["separate"],
            "bundled": savings[key]["bundled"],
            "saved": savings[key]["separate"] - savings[key]["bundled"],
        }
        for key, label, unit in SAVING_ROWS
    ]


def bundle_context(session: Session, bundle: Bundle) -> dict[str, Any]:
    items = service.bundle_items(session, bundle)
    groups = checklist.material_groups(items)
    return {
        "bundle": bundle,
        "items": items,
        "savings": savings_rows(checklist.savings(items)),
        "groups": groups,
        "shared_fields": [f for f in checklist.shared_fields(items) if len(f["used_by"]) > 1],
        "required_by_item": {i.code: sum(1 for m in i.materials if m["required"]) for i in items},
    }


def still_missing(session: Session, *, application: BundleApplication) -> dict[str, str]:
    """Required fields of the one form still empty, in its order."""
    _, linked, items = service._context(session, application)
    fields = checklist.shared_fields(items)
    return missing_fields(fields, checklist.shared_values(linked, fields))


def application_context(
    session: Session, *, application: BundleApplication, account: Account
) -> dict[str, Any]:
    bundle, linked, items = service._context(session, application)
    fields = checklist.shared_fields(items)
    values = checklist.shared_values(linked, fields)
    groups = checklist.material_groups(items)
    draft = application.status == DRAFT
    plan = checklist.plan_submission(linked, items)
    formal_now = {c.id for c, _ in plan.formal}
    files_of = {c.id: files_by_material(session, case=c) for c in linked}
    rows: list[dict[str, Any]] = []
    for group in groups:
        files = service.group_files(session, linked, items, group)
        exclude = {f["sha256"] for f in files}
        missing_formal = [
            i.name
            for c, i, m in checklist.targets(linked, items, group)
            if c.id in formal_now and m["required"] and not files_of[c.id].get(m["code"])
        ]
        rows.append(
            {
                "group": group,
                "files": files,
                "offers": library.offers_for(
                    session, account=account, kind=group.kind, exclude=exclude
                )
                if draft and group.provided_by is None
                else [],
                "can_defer_now": group.deferrable and bool(missing_formal),
                "gaozhi_names": [i.name for i in group.gaozhi_items],
            }
        )
    required_rows = [r for r in rows if r["group"].required and r["group"].provided_by is None]
    cases_rows = [
        {
            "case": c,
            "item": i,
            "label": states.STATUS_LABELS[c.status],
            "tag": states.STATUS_TAGS[c.status],
            "due": due_info(c),
        }
        for c, i in zip(linked, items, strict=True)
    ]
    gaozhi_options = [
        i for c, i in zip(linked, items, strict=True) if states.permissions(c, i).gaozhi
    ]
    missing_form: dict[str, str] = {}
    for case, item in zip(linked, items, strict=True):
        missing_form |= missing_fields(item.fields, case.form)
    return {
        "application": application,
        "application_status": APPLICATION_STATUS[application.status],
        "bundle": bundle,
        "items": items,
        "cases": cases_rows,
        "fields": fields,
        "form_fields": [_with_use_hint(spec) for spec in fields],
        "values": values,
        "answers": [(spec, display_value(spec, values.get(spec["name"]))) for spec in fields],
        "materials": rows,
        "draft": draft,
        "form_done": not missing_form,
        # Required fields of the one form still empty, in its order (shown after a 保存).
        "still_missing": missing_fields(fields, values),
        "required_count": len(required_rows),
        "uploaded_required_count": sum(1 for r in required_rows if r["files"]),
        "plan": plan,
        "gaozhi_options": gaozhi_options,
        "deferrable_now": [r for r in rows if r["can_defer_now"] and not r["files"]],
        "progress": checklist.progress(linked),
        "savings": savings_rows(checklist.savings(items)),
        "rongque_text": RONGQUE_TEXT,
        "defer_days": DEFER_WORKING_DAYS,
    }


def _with_use_hint(spec: dict[str, Any]) -> dict[str, Any]:
    """The field's hint, plus which items use the answer (so sharing is visible)."""
    used = spec["used_by"]
    use = f"{len(used)} 个事项共用" if len(used) > 1 else f"用于“{used[0]}”"
    return {**spec, "hint": f"{spec['hint']}（{use}）" if spec.get("hint") else use}


def item_names(items: list[Item]) -> str:
    return "、".join(i.name for i in items)
