"""The ceiling of the status page: a bare Starlette route rendering the same template from a dict.

No middleware, no session, no database: only Starlette, Jinja2 and the portal's own
template environment (its filters and the `static_url` helper), with the context the
real case page was rendered from, captured once by bench/seed.py into BENCH_CONTEXT.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from portal.web import templates

CONTEXT = pickle.loads(Path(os.environ["BENCH_CONTEXT"]).read_bytes())


async def page(request: Request):
    return templates.TemplateResponse(request, "cases/case.html", dict(CONTEXT))


async def healthz(request: Request):
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/page", page), Route("/healthz", healthz)])
