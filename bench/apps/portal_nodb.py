"""The portal without its database: the real app (every middleware, sessions, logging,
metrics) with one extra route rendering the case page from the captured dict.

Compared with the bare route it shows what the portal's stack costs; compared with
the real case page, what the database and the login check cost.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from fastapi import Request

from portal.cli import serve_app
from portal.web import render

CONTEXT = pickle.loads(Path(os.environ["BENCH_CONTEXT"]).read_bytes())


def create():
    app = serve_app()

    # A sync route, as the real case page is: the same hop to the thread pool.
    @app.get("/bench/page")
    def page(request: Request):
        return render(request, "cases/case.html", dict(CONTEXT))

    return app
