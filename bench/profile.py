"""Where the time goes, measured in this process: the causes printed beside missed goals."""

from __future__ import annotations

import asyncio
import cProfile
import os
import pickle
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def _module_of(filename: str, function: str) -> str:
    """A readable owner for a profile entry: the module of its code, or the built-in itself."""
    if filename == "~":  # C functions: name them ("method 'execute' of 'sqlite3.Cursor'")
        return function.strip("<>{}").removeprefix("built-in ")
    path = Path(filename)
    parts = path.with_suffix("").parts
    for anchor in ("site-packages", "portal", "bench"):
        if anchor in parts:
            start = parts.index(anchor) + (1 if anchor == "site-packages" else 0)
            dotted = ".".join(parts[start:])
            break
    else:  # the standard library: lib/python3.X/<module>
        lib = next((i for i, p in enumerate(parts) if p.startswith("python3")), len(parts) - 2)
        dotted = ".".join(parts[lib + 1 :])
    return dotted.removesuffix(".__init__")


def top_modules(
    profile: cProfile.Profile, calls: int, scale: float, n: int = 6, packages: bool = False
) -> list:
    """(owner, ms per call) by self time, scaled to unprofiled speed, largest first.

    `packages=True` sums modules into their top-level package (all of SQLAlchemy…).
    """
    stats = pstats.Stats(profile)
    owners: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        owner = _module_of(filename, function)
        if packages and filename != "~":
            owner = owner.split(".")[0]
        elif packages:
            owner = "C built-ins"
        owners[owner] += tottime
    ranked = sorted(owners.items(), key=lambda kv: -kv[1])[:n]
    return [(owner, round(seconds * 1000 / calls * scale, 3)) for owner, seconds in ranked]


def case_page_database(database_url: str, case_no: str, calls: int = 60) -> dict[str, Any]:
    """The database side of the case page: statements, SQLite time, and who spends the rest."""
    from sqlalchemy import event, select

    from portal.accounts.models import Account
    from portal.cases import pages
    from portal.cases.models import Case
    from portal.catalogue.models import Item
    from portal.db import Database
    from portal.notifications.service import unread_count

    db = Database(database_url)
    count = {"statements": 0, "seconds": 0.0}

    @event.listens_for(db.engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, many):
        conn.info["bench_t0"] = time.perf_counter()
        count["statements"] += 1

    @event.listens_for(db.engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, many):
        count["seconds"] += time.perf_counter() - conn.info["bench_t0"]

    def once() -> None:
        # What the route does after the login check: the case, its item, the context.
        with db.session() as session:
            case = session.scalar(select(Case).where(Case.case_no == case_no))
            account = session.get(Account, case.account_id)
            item = session.get(Item, case.item_code)
            unread_count(session, account=account)
            pages.case_context(session, case=case, item=item, account=account)

    try:
        for _ in range(10):
            once()
        count.update(statements=0, seconds=0.0)
        started = time.perf_counter()
        for _ in range(calls):
            once()
        plain = (time.perf_counter() - started) / calls
        statements, sql = count["statements"] / calls, count["seconds"] / calls
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for _ in range(calls):
            once()
        profile.disable()
        profiled = (time.perf_counter() - started) / calls
    finally:
        db.dispose()
    return {
        "ms_per_page": round(plain * 1000, 2),
        "statements_per_page": statements,
        "sqlite_ms_per_page": round(sql * 1000, 2),
        "packages": top_modules(profile, calls, plain / profiled, n=5, packages=True),
        "top": top_modules(profile, calls, plain / profiled, n=5),
    }


def portal_stack(env: dict[str, str], context_file: Path, cookie: str, calls: int = 400):
    """The portal's request path around the same render (no database), run in this process.

    The route is async here so the profiler (which follows one thread) sees the whole
    request; the live server's sync route adds the thread-pool hop on top.
    """
    import logging

    from fastapi import Request

    from portal.app import create_app
    from portal.logs import configure_logging
    from portal.settings import Settings
    from portal.web import render

    context = pickle.loads(context_file.read_bytes())
    settings = Settings(
        data_dir=Path(env["PORTAL_DATA_DIR"]),
        database_url=env["PORTAL_DATABASE_URL"],
        secret_key=env["PORTAL_SECRET_KEY"],
        bureau_url=env["PORTAL_BUREAU_URL"],
        bureau_secret=env["PORTAL_BUREAU_SECRET"],
        max_upload_mb=int(env["PORTAL_MAX_UPLOAD_MB"]),
        dispatcher=False,
    ).prepare()
    app = create_app(settings)

    @app.get("/bench/page")
    async def page(request: Request):
        return render(request, "cases/case.html", dict(context))

    # The portal's own log handler and format, written nowhere.
    configure_logging(json_lines=settings.log_json)
    root = logging.getLogger()
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    root.handlers[0].setStream(sink)  # type: ignore[attr-defined]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/bench/page",
        "raw_path": b"/bench/page",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        return None

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(scope, headers=list(scope["headers"])), receive, send)

    async def main() -> dict[str, Any]:
        await many(50)
        started = time.perf_counter()
        await many(calls)
        plain = (time.perf_counter() - started) / calls
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        await many(calls)
        profile.disable()
        profiled = (time.perf_counter() - started) / calls
        return {
            "ms_per_request": round(plain * 1000, 3),
            "packages": top_modules(profile, calls, plain / profiled, n=5, packages=True),
            "top": top_modules(profile, calls, plain / profiled, n=6),
        }

    try:
        return asyncio.run(main())
    finally:
        root.handlers[:] = []
        sink.close()


def bare_render(context_file: Path, calls: int = 400) -> float:
    """ms to render the case template from the dict, nothing else (the bare route's core)."""
    from starlette.requests import Request

    from portal.web import templates

    context = pickle.loads(context_file.read_bytes())
    scope = {"type": "http", "method": "GET", "path": "/page", "headers": [], "query_string": b""}
    request = Request(scope)
    for _ in range(20):
        templates.TemplateResponse(request, "cases/case.html", dict(context))
    started = time.perf_counter()
    for _ in range(calls):
        templates.TemplateResponse(request, "cases/case.html", dict(context))
    return round((time.perf_counter() - started) / calls * 1000, 3)
