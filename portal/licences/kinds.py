"""Application kinds about a licence (延续/变更/注销/补办): each with its own form, materials
and time limits from the catalogue (`Item.applications`), seen through the item.

A case of kind `renewal` of 食品经营许可 is still a case of item SC0004, but everything
that asks the item what to fill in, what to upload and how long it takes — the form
page, the uploads, the submission check, the due date — must get the kind's answer.
`item_for_case` gives them an item that answers that way; a new application gets the
item itself. It imports only the catalogue, so cases and exchange can use it.
"""

from __future__ import annotations

import re
from typing import Any

from portal.catalogue.models import Item

KINDS = ("renewal", "change", "cancellation", "reissue")  # the order buttons appear in
KIND_LABELS = {
    "new": "新办",
    "renewal": "延续",
    "change": "变更",
    "cancellation": "注销",
    "reissue": "补办",
}
ACTION_LABELS = {
    "renewal": "申请延续",
    "change": "申请变更",
    "cancellation": "申请注销",
    "reissue": "申请补办",
}
_NEW_SUFFIX = re.compile(r"(（新办）|\(新办\)|新办)$")


def offered(item: Item | None) -> dict[str, dict[str, Any]]:
    """The kinds the item offers about its licence, with their specs (materials, form…)."""
    if item is None or not item.licence_name:
        return {}
    applications = getattr(item, "applications", None) or {}
    return {k: applications[k] for k in KINDS if (applications.get(k) or {}).get("materials")}


def kind_name(item: Item, kind: str) -> str:
    """食品经营许可（新办） applied for as a renewal: 食品经营许可（延续）."""
    spec = offered(item).get(kind) or {}
    if spec.get("name"):
        return spec["name"]
    return f"{_NEW_SUFFIX.sub('', item.name)}（{KIND_LABELS.get(kind, kind)}）"


class KindItem:
    """The item as one kind of application about its licence is filed: the kind's name,
    form fields, materials, time limits and pre-review; everything else is the item's."""

    def __init__(self, item: Item, kind: str, spec: dict[str, Any]) -> None:
        self._item = item
        self.kind = kind
        self.kind_label = KIND_LABELS.get(kind, kind)
        self.name = kind_name(item, kind)
        self.catalogue_name = item.name
        self.fields = list(spec.get("fields") or [])
        self.materials = list(spec.get("materials") or [])
        self.legal_days = int(spec.get("legal_days", item.legal_days))
        self.promised_days = int(spec.get("promised_days", item.promised_days))
        self.prereview = bool(spec.get("prereview", False))
        # 告知承诺 is the new application's regime; none of these kinds has one.
        self.commitment_text = None
        self.source = spec.get("source", "")

    def material(self, code: str) -> dict[str, Any] | None:
        return next((m for m in self.materials if m["code"] == code), None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def item_for(item: Item, kind: str | None) -> Item | KindItem:
    """The item as applied for in `kind`; the item itself for a new application."""
    if not kind or kind == "new":
        return item
    spec = offered(item).get(kind)
    if spec is None:  # no longer offered: the case shows its kind on the item's own terms
        spec = {"fields": item.fields, "materials": item.materials, "prereview": item.prereview}
    return KindItem(item, kind, spec)


def item_for_case(session, case) -> Any:
    """The item of a case, as its application kind files it."""
    from portal.catalogue.service import filed_item

    return item_for(filed_item(session, case.item_code), case.application_kind)
