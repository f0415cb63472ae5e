"""Finding items, and loading the catalogue file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.catalogue import cache, search
from portal.catalogue.models import Bundle, Hall, Item
from portal.catalogue.schemas import DOMAIN_LABELS, CatalogueFile, ItemSpec
from portal.clock import utcnow
from portal.errors import Invalid, NotFound
from portal.resources import CATALOGUE_FILE


@dataclass
class SearchResults:
    items: list[Item]
    bundles: list[Bundle]
    suggestions: list[str]  # 你是不是要找: words of the catalogue near what was typed


# Every read below goes through the process's snapshot of the catalogue (portal.catalogue.
# cache): no SQL once it is read, current within a second of a `portal catalogue load`.
# Each caller gets detached copies of its own, typed as the ORM classes they were.


def search_catalogue(session: Session, *, q: str = "", domain: str = "") -> SearchResults:
    """Active items for what a person typed, best first, with the 一件事 beside them."""
    if domain and domain not in DOMAIN_LABELS:
        raise Invalid({"domain": "领域无效，可选：market、investment、social、other"})
    catalogue = cache.snapshot(session)
    if not search.normalize(q):
        # Browsing: every item by code, without building the index (or loading jieba) for it.
        return SearchResults(items=catalogue.active_items(domain), bundles=[], suggestions=[])
    found = catalogue.search_index().search(q[:50])
    items = [i for i in catalogue.items_in(found.codes) if i.active]
    if domain:
        items = [i for i in items if i.domain == domain]
    return SearchResults(
        items=items,
        bundles=[b for b in map(catalogue.bundle, found.bundles) if b is not None and b.active],
        suggestions=found.suggestions,
    )


def search_items(session: Session, *, q: str = "", domain: str = "") -> list[Item]:
    """Active items matching `q` by name, code, keyword, pinyin or a near miss; best first."""
    return search_catalogue(session, q=q, domain=domain).items


def popular_items(session: Session, *, limit: int = 6) -> list[Item]:
    """The items applied for most (every case counts), then the catalogue's first ones."""
    from portal.cases.models import Case

    counts = dict(
        session.execute(select(Case.item_code, func.count()).group_by(Case.item_code)).all()
    )
    items = cache.snapshot(session).active_items()
    items.sort(key=lambda i: -counts.get(i.code, 0))
    return items[:limit]


def count_by_domain(session: Session) -> dict[str, int]:
    return dict(Counter(i["domain"] for i in cache.snapshot(session).items.values() if i["active"]))


def get_item(session: Session, *, code: str) -> Item:
    """The active item with this code; 404 otherwise."""
    item = cache.snapshot(session).item(code)
    if item is None or not item.active:
        raise NotFound("没有找到该事项。", code="item_not_found")
    return item


def find_item(session: Session, code: str) -> Item | None:
    """The item with this code, retired or not; None when the catalogue has none."""
    return cache.snapshot(session).item(code)


def filed_item(session: Session, code: str) -> Item:
    """The item a case was filed under, retired or not: items are retired, never deleted."""
    item = find_item(session, code)
    if item is None:
        raise LookupError(f"item {code} of a case is missing from the catalogue")
    return item


def all_items(session: Session) -> list[Item]:
    """Every item, retired ones too, by code."""
    return cache.snapshot(session).all_items()


def items_by_code(session: Session, codes: Iterable[str]) -> dict[str, Item]:
    """The items of these codes that exist, retired or not (a bundle's, a case list's)."""
    return {i.code: i for i in cache.snapshot(session).items_in(codes)}


def halls_of(session: Session, item: Item) -> list[Hall]:
    if not item.halls:
        return []
    return cache.snapshot(session).halls_in(item.halls)


def get_hall(session: Session, code: str) -> Hall | None:
    return cache.snapshot(session).hall(code)


def all_halls(session: Session) -> dict[str, Hall]:
    return {h.code: h for h in cache.snapshot(session).all_halls()}


def list_bundles(session: Session) -> list[Bundle]:
    """Active 一件事 by code."""
    return cache.snapshot(session).active_bundles()


def find_bundle(session: Session, code: str) -> Bundle | None:
    """The bundle with this code, retired or not; None when the catalogue has none."""
    return cache.snapshot(session).bundle(code)


def item_summary(item: Item) -> dict[str, Any]:
    return {
        "code": item.code,
        "name": item.name,
        "domain": item.domain,
        "department": item.department,
        "promised_days": item.promised_days,
        "legal_days": item.legal_days,
        "visits": item.visits,
        "online": item.online,
        "prereview": item.prereview,
        "express": item.express,
        "fee": item.fee,
    }


def item_detail(item: Item, halls: list[Hall]) -> dict[str, Any]:
    """Every element of the item's implementation list, as the API returns it."""
    return {
        **item_summary(item),
        "category": item.category,
        "origin_department": item.origin_department,
        "basis": item.basis,
        "conditions": item.conditions,
        "materials": [
            {
                k: m.get(k)
                for k in ("code", "name", "kind", "required", "deferrable", "copies", "note")
            }
            | {"original": bool(m.get("original"))}
            for m in item.materials
        ],
        "fields": item.fields,
        "steps": item.steps,
        "halls": [
            {
                "code": h.code,
                "name": h.name,
                "address": h.address,
                "hours": h.hours,
                "phone": h.phone,
                "postage": h.postage,
            }
            for h in halls
        ],
        "commitment": item.commitment_text,
        "licence_name": item.licence_name,
        "licence_valid_years": item.licence_valid_years,
        "consult_phone": item.consult_phone,
    }


# --- loading ---------------------------------------------------------------------


@dataclass
class LoadReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"新增 {len(self.added)} 项，更新 {len(self.updated)} 项，未变 {len(self.unchanged)} 项"
        ]
        out += [f"  + {code}" for code in self.added]
        out += [f"  ~ {code}" for code in self.updated]
        return out


def read_catalogue_file(path: Path = CATALOGUE_FILE) -> CatalogueFile:
    """Parse and check a catalogue file; ValueError with the reasons when it is wrong."""
    try:
        return CatalogueFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"catalogue file {path} is not valid: {exc}") from exc


def _applications(spec: ItemSpec) -> dict[str, Any]:
    """The kinds offered about the item's licence, by kind; a renewal with its window."""
    if spec.licence is None:
        return {}
    kinds: dict[str, Any] = {kind: k.model_dump() for kind, k in spec.licence.kinds.items()}
    if spec.licence.renewal is not None:
        kinds.setdefault("renewal", {})["window"] = spec.licence.renewal.model_dump()
    return kinds


def _item_values(spec: ItemSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "domain": spec.domain,
        "category": spec.category,
        "department": spec.department,
        "origin_department": spec.origin_department,
        "basis": list(spec.basis),
        "conditions": list(spec.conditions),
        "materials": [m.model_dump() for m in spec.materials],
        "fields": [f.model_dump() for f in spec.fields],
        "steps": [s.model_dump() for s in spec.steps],
        "legal_days": spec.legal_days,
        "promised_days": spec.promised_days,
        "fee": spec.fee,
        "visits": spec.visits,
        "online": spec.online,
        "prereview": spec.prereview,
        "express": spec.express,
        "commitment_text": spec.commitment.text if spec.commitment else None,
        "halls": list(spec.halls),
        "licence_name": spec.licence.name if spec.licence else "",
        "licence_valid_years": spec.licence.valid_years if spec.licence else None,
        "applications": _applications(spec),
        "consult_phone": spec.consult_phone,
        "sources": list(spec.sources),
        "keywords": list(spec.keywords),
        "search_text": f"{spec.name} {spec.code}".lower(),
        "active": True,
    }


def load_catalogue(session: Session, *, catalogue: CatalogueFile) -> LoadReport:
    """Insert or update halls, items and bundles from a catalogue file; report item changes."""
    report = LoadReport()
    for spec in catalogue.halls:
        values = spec.model_dump()
        values["windows"] = [w for w in values["windows"]]
        hall = session.get(Hall, spec.code)
        if hall is None:
            session.add(Hall(**values))
        else:
            for key, value in values.items():
                setattr(hall, key, value)
    session.flush()
    for item_spec in catalogue.items:
        values = _item_values(item_spec)
        item = session.get(Item, item_spec.code)
        if item is None:
            session.add(Item(code=item_spec.code, updated_at=utcnow(), **values))
            report.added.append(item_spec.code)
            continue
        if any(getattr(item, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(item, key, value)
            item.updated_at = utcnow()
            report.updated.append(item_spec.code)
        else:
            report.unchanged.append(item_spec.code)
    session.flush()
    for bundle_spec in catalogue.bundles:
        values = {**bundle_spec.model_dump(), "active": True}
        bundle = session.get(Bundle, bundle_spec.code)
        if bundle is None:
            session.add(Bundle(**values))
        else:
            for key, value in values.items():
                setattr(bundle, key, value)
    session.flush()
    # Its flushes rewrote the catalogue's version token (portal.catalogue.models): every
    # process takes the new catalogue within cache.CHECK_SECONDS of the commit.
    return report


def catalogue_is_empty(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Item)) == 0
