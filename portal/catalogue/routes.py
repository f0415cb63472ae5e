"""Catalogue pages: the start page, browsing and searching items, an item's 办事指南."""

from __future__ import annotations

from fastapi import APIRouter, Request

from portal.catalogue import service
from portal.catalogue.schemas import DOMAIN_LABELS
from portal.db import DbSession
from portal.web import CurrentAccount, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, session: DbSession, account: CurrentAccount):
    return render(
        request,
        "catalogue/home.html",
        {
            "domains": DOMAIN_LABELS,
            "counts": service.count_by_domain(session),
            "bundles": service.list_bundles(session)[:4],
        },
    )


@router.get("/items")
def list_items(
    request: Request, session: DbSession, account: CurrentAccount, q: str = "", domain: str = ""
):
    q = q.strip()[:50]
    if domain not in DOMAIN_LABELS:
        domain = ""
    items = service.search_items(session, q=q, domain=domain)
    return render(
        request,
        "catalogue/items.html",
        {"items": items, "q": q, "domain": domain, "domains": DOMAIN_LABELS},
    )


@router.get("/items/{code}")
def item_detail(request: Request, code: str, session: DbSession, account: CurrentAccount):
    item = service.get_item(session, code=code)
    return render(
        request,
        "catalogue/item.html",
        {
            "item": item,
            "halls": service.halls_of(session, item),
            "domain_label": DOMAIN_LABELS[item.domain],
            "deferrable": [m for m in item.materials if m.get("deferrable")],
        },
    )
