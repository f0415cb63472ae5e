"""Finding items, and loading the catalogue file."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.catalogue import search
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


_index_lock = threading.Lock()
_index: tuple[tuple[Any, ...], search.SearchIndex] | None = None


def invalidate_index() -> None:
    """Forget the search index (after loading a catalogue in this process)."""
    global _index
    with _index_lock:
        _index = None


def _search_index(session: Session) -> search.SearchIndex:
    """The index of this database's catalogue, rebuilt when an item or bundle changes."""
    global _index
    # Another process (`portal catalogue load`) may change the catalogue: the newest
    # updated_at and the row counts tell, for two cheap aggregate queries per search.
    changed, count = session.execute(
        select(func.max(Item.updated_at), func.count()).select_from(Item)
    ).one()
    bundles = session.scalar(
        select(func.count()).select_from(Bundle).where(Bundle.active.is_(True))
    )
    key = (str(session.get_bind().engine.url), changed, count, bundles)
    with _index_lock:
        if _index is not None and _index[0] == key:
            return _index[1]
    items = [
        search.ItemDoc(
            code=i.code,
            name=i.name,
            domain=i.domain,
            keywords=tuple(i.keywords or ()),
            conditions=" ".join(i.conditions or ()),
        )
        for i in session.scalars(select(Item).where(Item.active.is_(True)))
    ]
    docs = [
        search.BundleDoc(code=b.code, name=b.name, description=b.description, items=tuple(b.items))
        for b in list_bundles(session)
    ]
    index = search.SearchIndex(items, docs)
    with _index_lock:
        _index = (key, index)
    return index


def search_catalogue(session: Session, *, q: str = "", domain: str = "") -> SearchResults:
    """Active items for what a person typed, best first, with the 一件事 beside them."""
    if domain and domain not in DOMAIN_LABELS:
        raise Invalid({"domain": "领域无效，可选：market、investment、social、other"})
    if not search.normalize(q):
        # Browsing: every item by code, without loading the index (or jieba) for it.
        query = select(Item).where(Item.active.is_(True)).order_by(Item.code)
        if domain:
            query = query.where(Item.domain == domain)
        return SearchResults(items=list(session.scalars(query)), bundles=[], suggestions=[])
    found = _search_index(session).search(q[:50])
    rows = {i.code: i for i in session.scalars(select(Item).where(Item.code.in_(found.codes)))}
    items = [rows[c] for c in found.codes if c in rows and rows[c].active]
    if domain:
        items = [i for i in items if i.domain == domain]
    bundles = {b.code: b for b in list_bundles(session)}
    return SearchResults(
        items=items,
        bundles=[bundles[c] for c in found.bundles if c in bundles],
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
    items = list(session.scalars(select(Item).where(Item.active.is_(True)).order_by(Item.code)))
    items.sort(key=lambda i: -counts.get(i.code, 0))
    return items[:limit]


def count_by_domain(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Item.domain, func.count()).where(Item.active.is_(True)).group_by(Item.domain)
    )
    return {domain: n for domain, n in rows}


def get_item(session: Session, *, code: str) -> Item:
    """The active item with this code; 404 otherwise."""
    item = session.get(Item, code)
    if item is None or not item.active:
        raise NotFound("没有找到该事项。", code="item_not_found")
    return item


def filed_item(session: Session, code: str) -> Item:
    """The item a case was filed under, retired or not: items are retired, never deleted."""
    item = session.get(Item, code)
    if item is None:
        raise LookupError(f"item {code} of a case is missing from the catalogue")
    return item


def halls_of(session: Session, item: Item) -> list[Hall]:
    if not item.halls:
        return []
    halls = {h.code: h for h in session.scalars(select(Hall).where(Hall.code.in_(item.halls)))}
    return [halls[c] for c in item.halls if c in halls]


def all_halls(session: Session) -> dict[str, Hall]:
    return {h.code: h for h in session.scalars(select(Hall))}


def list_bundles(session: Session) -> list[Bundle]:
    return list(
        session.scalars(select(Bundle).where(Bundle.active.is_(True)).order_by(Bundle.code))
    )


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
    invalidate_index()
    return report


def catalogue_is_empty(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Item)) == 0
