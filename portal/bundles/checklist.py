"""The bundle's one form, one checklist, its savings and its submission plan: pure maths.

Everything here is a function of the catalogue's items and of the linked cases as
already read, never of a session, so the rules of a 一件事 can be read, and checked,
apart from the use cases that store them (portal/bundles/service.py). What a case
may do now is asked of portal.cases.states, never restated here.

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

from dataclasses import dataclass, field
from typing import Any

from portal.cases import states
from portal.cases.forms import clean_form, in_field_order, merge_specs
from portal.cases.models import Case
from portal.cases.service import gaozhi_replaced
from portal.catalogue.models import Item
from portal.errors import Conflict, Invalid, NotFound
from portal.library.service import licence_kind

COMBINED_FORM_KIND = "application_form"


# --- the checklist -------------------------------------------------------------------


def issuers(items: list[Item]) -> dict[str, Item]:
    """Material kinds that an item of the bundle issues (its licence), kind -> that item."""
    found: dict[str, Item] = {}
    for item in items:
        found.setdefault(licence_kind(item), item)
    return found


def provided_by(items: list[Item], item: Item, material: dict[str, Any]) -> Item | None:
    """The other item of the bundle that issues this material of `item`, if any."""
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
        return [i for i, m in self.entries if m["code"] in gaozhi_replaced(i)]

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
            p.code: p for i, m in group.entries if (p := provided_by(items, i, m)) is not None
        }
        # Shared only when every item asking for it gets it from inside the bundle.
        if providers and all(provided_by(items, i, m) for i, m in group.entries):
            group.provided_by = next(iter(providers.values()))
    return list(groups.values())


def group_of(items: list[Item], kind: str) -> MaterialGroup:
    """The group files of `kind` go to; 409 for one issued inside the bundle, 404 for none."""
    for group in material_groups(items):
        if group.kind == kind:
            if group.provided_by is not None:
                raise Conflict(
                    f"“{group.name}”由本一件事中的“{group.provided_by.name}”核发后内部共享，无需上传。",
                    code="provided_in_bundle",
                )
            return group
    raise NotFound("本“一件事”不需要这类材料。", code="material_not_found")


def targets(
    linked: list[Case], items: list[Item], group: MaterialGroup
) -> list[tuple[Case, Item, dict[str, Any]]]:
    """The cases, items and materials a file of the group is attached to."""
    # A case withdrawn after it was sent stays in the bundle but takes no more files.
    by_code = {i.code: c for c, i in zip(linked, items, strict=True) if not states.withdrawn(c)}
    return [(by_code[i.code], i, m) for i, m in group.entries if i.code in by_code]


def live_targets(
    linked: list[Case], items: list[Item], group: MaterialGroup
) -> list[tuple[Case, Item, dict[str, Any]]]:
    """The targets of an upload; 409 when every item asking for it was dropped."""
    found = targets(linked, items, group)
    if not found:
        raise Conflict("需要这类材料的事项草稿都已删除，无需再上传。", code="no_target")
    return found


# --- the one form ----------------------------------------------------------------------


def shared_fields(items: list[Item]) -> list[dict[str, Any]]:
    """The one form: each field name once, obeying every item's rules (forms.merge_specs)."""
    specs: dict[str, list[dict[str, Any]]] = {}
    users: dict[str, list[str]] = {}
    for item in items:
        for spec in item.fields:
            specs.setdefault(spec["name"], []).append(spec)
            users.setdefault(spec["name"], []).append(item.name)
    return [{**merge_specs(found), "used_by": users[name]} for name, found in specs.items()]


def has_field(item: Item, name: str) -> bool:
    return any(f["name"] == name for f in item.fields)


def checked_values(items: list[Item], form: dict[str, Any], *, partial: bool) -> dict[str, Any]:
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
        own = {k: v for k, v in form.items() if has_field(item, k)}
        _, problems = clean_form(item.fields, own, partial=partial)
        for key, message in problems.items():
            errors.setdefault(key, message)
    if errors:
        raise Invalid(in_field_order(fields, errors))
    return values


def shared_values(linked: list[Case], fields: list[dict[str, Any]]) -> dict[str, Any]:
    """What the one form shows: each field's value from the first case that has one."""
    values: dict[str, Any] = {}
    for spec in fields:
        for case in linked:
            if spec["name"] in case.form:
                values[spec["name"]] = case.form[spec["name"]]
                break
    return values


# --- savings and progress ---------------------------------------------------------------


def _finish_days(item: Item, items: list[Item], memo: dict[str, int], path: tuple[str, ...]) -> int:
    if item.code in memo:
        return memo[item.code]
    waits = 0
    for material in item.materials:
        issuer = provided_by(items, item, material) if material["required"] else None
        if issuer is not None and issuer.code not in path:
            waits = max(waits, _finish_days(issuer, items, memo, (*path, item.code)))
    memo[item.code] = waits + item.promised_days
    return memo[item.code]


def savings(items: list[Item]) -> dict[str, dict[str, int]]:
    """Steps, materials and working days applying item by item against the bundle (module doc)."""
    required = [(i, m) for i in items for m in i.materials if m["required"]]
    bundled_kinds = {m["kind"] for i, m in required if provided_by(items, i, m) is None}
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


def progress(linked: list[Case]) -> dict[str, int]:
    """How many linked cases are finished, and how many of them approved."""
    return {
        "total": len(linked),
        "finished": sum(1 for c in linked if c.status in states.FINISHED),
        "approved": sum(1 for c in linked if c.status == states.APPROVED),
    }


# --- the submission plan -----------------------------------------------------------------


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
    """Drafts go to 网上预审 where the item has it (else straight in), passed ones go formal;
    each case as its own permissions allow (states.permissions)."""
    plan = Plan()
    for case, item in zip(linked, items, strict=True):
        may = states.permissions(case, item)
        if may.gaozhi and item.code in gaozhi_items:
            plan.gaozhi.append((case, item))
        elif may.prereview:
            plan.prereview.append((case, item))
        elif may.formal:
            plan.formal.append((case, item))
        elif states.allowed(case, "prereview.passed"):  # the bureau's answer is awaited
            plan.waiting.append((case, item))
    return plan


def bundle_errors(exc: Invalid, item: Item, groups: dict[str, MaterialGroup]) -> dict[str, str]:
    """One case's 422, said in the bundle's terms: a material kind of the one checklist."""
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


def in_page_order(
    errors: dict[str, str], items: list[Item], groups: dict[str, MaterialGroup]
) -> dict[str, str]:
    """Problems as the review page shows them: the one form, the checklist, the promises."""
    keys = [f"form.{f['name']}" for f in shared_fields(items)] + [f"materials.{k}" for k in groups]
    position = {key: i for i, key in enumerate(keys)}
    return dict(sorted(errors.items(), key=lambda kv: position.get(kv[0], len(position))))
