"""Prefill: what the portal already knows about the applicant fills the new form.

A new case (and every case of a new 一件事, which creates its cases through
`cases.service.create_case`) starts with the applicant's name, ID number, legal
representative and phone in the item's matching fields, so nobody types what the
account already holds. The fields stay editable: no item in the catalogue marks a
field as fixed, and what the bureau relies on about the applicant is the account's
`applicant` block of `case.submitted`, not these copies.

Who the applicant is:

* a person filing for themself: their name, 居民身份证号码 and phone;
* an enterprise account: its name, 统一社会信用代码, legal representative (as the
  identity platform named it) and phone; the 经办人 it registered as contact;
* an agent filing `on_behalf_of` an enterprise: the enterprise's name, USCC and
  legal representative, and the agent's own name and phone as the contact.

The mapping, field by name first and by label where the name says nothing, lives
here and nowhere else. A field whose label starts with 拟 ("proposed": 拟任法定代表人,
拟设立公司名称) asks about someone or something that does not exist yet, so it is
left empty, as are the other applicant fields of that item's legal representative.
A value that fails the field's own check (its type, its length) is left out, so a
prefilled value never makes a new draft fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal.accounts.models import Account
from portal.cases.forms import FieldProblem, clean_value


@dataclass(frozen=True)
class Applicant:
    """Who a new case is for, as the prefill sees it."""

    kind: str  # "person" | "enterprise"
    name: str
    id_number: str | None
    legal_rep: str | None
    phone: str
    contact_name: str | None


def applicant_for(account: Account, enterprise: Account | None = None) -> Applicant:
    """The applicant of a case `account` files, for itself or for `enterprise`."""
    if enterprise is not None:
        return Applicant(
            kind="enterprise",
            name=enterprise.name,
            id_number=enterprise.id_number,
            legal_rep=enterprise.legal_rep_name,
            phone=account.phone,  # the agent is the one the bureau calls back
            contact_name=account.name,
        )
    if account.kind == "enterprise":
        return Applicant(
            kind="enterprise",
            name=account.name,
            id_number=account.id_number,
            legal_rep=account.legal_rep_name,
            phone=account.phone,
            contact_name=account.agent_name,
        )
    return Applicant(
        kind="person",
        name=account.name,
        id_number=account.id_number,
        legal_rep=None,
        phone=account.phone,
        contact_name=account.name,
    )


def _proposed(spec: dict[str, Any]) -> bool:
    return str(spec.get("label", "")).startswith("拟")


def _legal_rep(who: Applicant) -> str | None:
    # A natural person applying is the 经营者 / 负责人 / 申请人 the field asks for.
    return who.name if who.kind == "person" else who.legal_rep


def _legal_rep_id(who: Applicant) -> str | None:
    # An enterprise's legal representative's number is not something the portal holds.
    return who.id_number if who.kind == "person" else None


Rule = tuple[Callable[[dict[str, Any]], bool], Callable[[Applicant], str | None]]

# First match wins. By field name (the catalogue's names), then by label for fields
# named otherwise (申请人姓名, 身份证号, 统一社会信用代码, 法定代表人, 联系电话).
RULES: list[Rule] = [
    (lambda s: s["name"] == "contact_phone", lambda w: w.phone),
    (lambda s: s["name"] == "contact_name", lambda w: w.contact_name),
    (lambda s: s["name"] == "uscc", lambda w: w.id_number if w.kind == "enterprise" else None),
    (lambda s: s["name"] == "legal_rep_name", _legal_rep),
    (lambda s: s["name"] == "legal_rep_id_number", _legal_rep_id),
    (
        lambda s: s["name"] == "business_name",
        lambda w: w.name if w.kind == "enterprise" else None,
    ),
    (lambda s: s["type"] == "phone" and "联系" in s["label"], lambda w: w.phone),
    (lambda s: s["type"] == "uscc", lambda w: w.id_number if w.kind == "enterprise" else None),
    (lambda s: "法定代表人" in s["label"] and "身份证" not in s["label"], lambda w: w.legal_rep),
    (
        lambda s: s["label"] in ("申请人姓名", "申请人", "姓名"),
        lambda w: w.name if w.kind == "person" else None,
    ),
    (
        lambda s: s["type"] == "ric" and s["label"].startswith(("申请人", "身份证")),
        lambda w: w.id_number if w.kind == "person" else None,
    ),
]

LEGAL_REP_FIELDS = ("legal_rep_name", "legal_rep_id_number")


def known_values(fields: list[dict[str, Any]], who: Applicant) -> dict[str, Any]:
    """The item's fields the applicant's known data fills, each as its field stores it."""
    # 拟任法定代表人: the item asks about a person to be appointed, not the applicant.
    proposed_rep = any(s["name"] == "legal_rep_name" and _proposed(s) for s in fields)
    values: dict[str, Any] = {}
    for spec in fields:
        if _proposed(spec) or (proposed_rep and spec["name"] in LEGAL_REP_FIELDS):
            continue
        raw = next((value(who) for matches, value in RULES if matches(spec)), None)
        if not raw:
            continue
        try:
            cleaned = clean_value(spec, raw)
        except FieldProblem:
            continue  # e.g. longer than this field allows: the citizen types it instead
        if cleaned is not None:
            values[spec["name"]] = cleaned
    return values


def prefilled(
    fields: list[dict[str, Any]],
    *,
    account: Account,
    enterprise: Account | None = None,
    form: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new draft's form: the known values, under whatever the caller sent."""
    return {**known_values(fields, applicant_for(account, enterprise)), **(form or {})}
