"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The database answers and the back office is reachable."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.db.session() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(
                request.app.state.settings.bureau_url.rstrip("/") + "/healthz"
            )
        checks["bureau"] = (
            "ok" if response.status_code < 500 else f"error: HTTP {response.status_code}"
        )
    except httpx.HTTPError as exc:
        checks["bureau"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
