"""Catalogue pages: the start page, browsing and searching items, an item's 办事指南."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request

from portal.accounts import authorisations
from portal.accounts.models import Account
from portal.cases import service as cases
from portal.catalogue import service
from portal.catalogue.models import Item
from portal.catalogue.schemas import DOMAIN_LABELS
from portal.db import DbSession
from portal.routing import Router
from portal.web import CurrentAccount, render

router = Router(include_in_schema=False)


# Life events on the start page: what people say, and where it leads (a 一件事 when the
# catalogue has it, otherwise a search in their own words).
LIFE_EVENTS = [
    ("我要开餐馆", "kbcyd", "开饭店"),
    ("我要开公司", "", "开公司"),
    ("我要盖厂房", "gyxmkg", "盖厂房"),
    ("我要开药店", "kbyd", "开药店"),
    ("我要开理发店", "kbmrmf", "理发店"),
    ("我要砍树", "", "砍树"),
]


@router.get("/")
def home(request: Request, session: DbSession, account: CurrentAccount):
    bundles = {b.code: b for b in service.list_bundles(session)}
    events = [
        {
            "label": label,
            "href": f"/bundles/{code}" if code in bundles else f"/items?q={quote(words)}",
        }
        for label, code, words in LIFE_EVENTS
    ]
    return render(
        request,
        "catalogue/home.html",
        {
            "domains": DOMAIN_LABELS,
            "counts": service.count_by_domain(session),
            "events": events,
            "popular": service.popular_items(session),
        },
    )


@router.get("/halls")
def halls_page(request: Request, session: DbSession, account: CurrentAccount):
    halls = sorted(service.all_halls(session).values(), key=lambda h: h.code != "WJ-ZWZX")
    return render(request, "catalogue/halls.html", {"halls": halls})


@router.get("/items")
def list_items(
    request: Request, session: DbSession, account: CurrentAccount, q: str = "", domain: str = ""
):
    q = q.strip()[:50]
    if domain not in DOMAIN_LABELS:
        domain = ""
    found = service.search_catalogue(session, q=q, domain=domain)
    return render(
        request,
        "catalogue/items.html",
        {
            "items": found.items,
            "bundles": found.bundles if q else [],
            "suggestions": found.suggestions,
            "q": q,
            "domain": domain,
            "domains": DOMAIN_LABELS,
        },
    )


@router.get("/items/{code}")
def item_detail(request: Request, code: str, session: DbSession, account: CurrentAccount):
    item = service.get_item(session, code=code)
    # An agent (经办人) chooses whom the case is for: itself or an enterprise that
    # authorised it for this item (委托授权).
    subjects = []
    if account is not None:
        pairs = authorisations.subjects(session, account=account, item_code=item.code)
        subjects = [subject for subject, _ in pairs]
    return render(
        request,
        "catalogue/item.html",
        {
            "item": item,
            "subjects": subjects if len(subjects) > 1 else [],
            "halls": service.halls_of(session, item),
            "domain_label": DOMAIN_LABELS[item.domain],
            "deferrable": [m for m in item.materials if m.get("deferrable")],
            "drafts": _open_drafts(session, account, item),
        },
    )


def _open_drafts(session, account: Account | None, item: Item) -> list[dict]:
    """The account's unsubmitted drafts of the item, each with what it still needs."""
    if account is None:
        return []
    found = cases.open_drafts(session, account=account, item_code=item.code)
    needs = cases.still_needed(session, [(case, item) for case in found])
    rows = []
    for case in found:
        enterprise = session.get(Account, case.on_behalf_of_id) if case.on_behalf_of_id else None
        need = needs[case.id]
        rows.append(
            {
                "case": case,
                "needs": need,
                "for": enterprise.name if enterprise else "",
                # Where to go on: what is missing first, else check-your-answers.
                "href": f"/cases/{case.case_no}"
                + ("/form" if need.fields else "#materials" if need.materials else "/review"),
            }
        )
    return rows
