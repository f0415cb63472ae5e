"""改革成效: a public page of live figures, as SVG charts with a table behind each."""

from __future__ import annotations

from fastapi import Request

from portal.db import DbSession
from portal.routing import Router
from portal.stats import service
from portal.web import CurrentAccount, render

router = Router(include_in_schema=False)


@router.get("/stats")
def stats_page(request: Request, session: DbSession, account: CurrentAccount):
    return render(request, "stats/stats.html", service.page_context(session))
