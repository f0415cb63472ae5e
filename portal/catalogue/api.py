"""Catalogue JSON API (public)."""

from __future__ import annotations

from portal.catalogue import service
from portal.catalogue.schemas import ItemListOut, ItemOut
from portal.db import DbSession
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["catalogue"])


@router.get("/items", response_model=ItemListOut, responses={422: {"description": "领域无效"}})
def api_list_items(session: DbSession, q: str = "", domain: str = "") -> dict:
    """Items whose name or code contains `q`; `domain` one of market, investment, social, other."""
    items = service.search_items(session, q=q.strip()[:50], domain=domain)
    return {"items": [service.item_summary(i) for i in items]}


@router.get("/items/{code}", response_model=ItemOut, responses={404: {"description": "没有该事项"}})
def api_get_item(code: str, session: DbSession) -> dict:
    """Every element of the item's implementation list."""
    item = service.get_item(session, code=code)
    return service.item_detail(item, service.halls_of(session, item))
