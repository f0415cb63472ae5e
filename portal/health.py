"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from portal.routing import Router

router = Router(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The portal's own database answers.

    The back office is not checked: nothing a citizen does waits on it (events queue in
    the outbox until it is back), so its outage must not take the site out of the load
    balancer. Its reachability is a metric (`portal_bureau_up` at /metrics).
    """
    checks: dict[str, str] = {}
    try:
        with request.app.state.db.session() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
