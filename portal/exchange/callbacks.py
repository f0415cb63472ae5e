"""POST /api/bureau/v1/events: signed, idempotent callbacks from the back office."""

from __future__ import annotations

import json
import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from portal.db import DbSession
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange import signing
from portal.exchange.inbound import CASELESS, HANDLERS, apply_bureau_event
from portal.exchange.models import InboundEvent
from portal.exchange.schemas import DATA_MODELS, EnvelopeIn
from portal.routing import Router

router = Router(tags=["bureau exchange"])
log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
# The deepest event of the contract nests four levels (envelope, data, licence, a field);
# 32 leaves room for additions. Deeper is malformed, not an error of ours: json.loads and
# pydantic recurse, and a RecursionError would be a 500 the back office retries for a day.
MAX_DEPTH = 32


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@router.post(
    "/api/bureau/v1/events",
    responses={
        200: {"description": "processed, or a duplicate"},
        401: {"description": "signature missing, wrong or stale"},
        404: {"description": "unknown case_no"},
        409: {"description": "the event does not fit the case's status"},
        422: {"description": "malformed event"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def bureau_event(request: Request, session: DbSession) -> JSONResponse:
    """An event from the back office (docs/bureau-protocol.md)."""
    body = await request.body()
    settings = request.app.state.settings
    if not signing.verify(settings.bureau_secret, request.headers.get(signing.BUREAU_HEADER), body):
        return _error(401, "invalid_signature", "签名缺失、错误或已过期。")
    if len(body) > MAX_BODY:
        return _error(422, "invalid_event", "事件内容过大。")
    if b"\x00" in body or b"\\u0000" in body:  # PostgreSQL cannot keep NUL in text
        return _error(422, "invalid_event", "事件内容含有空字符（NUL）。")
    try:
        parsed = json.loads(body)
    except RecursionError:
        return _error(422, "invalid_event", f"事件内容嵌套过深（最多 {MAX_DEPTH} 层）。")
    except ValueError as exc:
        return _error(422, "invalid_event", f"事件格式不正确：{_short(exc)}")
    if _depth(parsed) > MAX_DEPTH:
        return _error(422, "invalid_event", f"事件内容嵌套过深（最多 {MAX_DEPTH} 层）。")
    try:
        envelope = EnvelopeIn.model_validate(parsed)
    except ValidationError as exc:
        return _error(422, "invalid_event", f"事件格式不正确：{_short(exc)}")
    # Every database step runs in the threadpool: on SQLite a write transaction may
    # wait for the lock, and the event loop must never wait with it.
    return await run_in_threadpool(_process, session, envelope)


def _process(session: Session, envelope: EnvelopeIn) -> JSONResponse:
    # Duplicates first: a replay answers "duplicate" even if its type is no longer known.
    if session.get(InboundEvent, envelope.event_id) is not None:
        return JSONResponse({"status": "duplicate"})
    model = DATA_MODELS.get(envelope.type)
    if model is None or (envelope.type not in HANDLERS and envelope.type not in CASELESS):
        return _error(422, "invalid_event", f"不支持的事件类型 {envelope.type}。")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        return _error(422, "invalid_event", f"事件数据不正确：{_short(exc)}")
    try:
        with session.begin_nested():
            session.add(
                InboundEvent(
                    event_id=envelope.event_id, type=envelope.type, case_no=envelope.case_no
                )
            )
            session.flush()
    except IntegrityError:
        return JSONResponse({"status": "duplicate"})  # the same event raced in just now
    try:
        apply_bureau_event(session, envelope=envelope, data=data)
        session.flush()
    except NotFound as exc:
        session.rollback()
        return _error(404, "unknown_case", exc.message)
    except Conflict as exc:
        session.rollback()
        return _error(409, "conflict", exc.message)
    except Invalid as exc:  # well-formed, but names what the case does not have
        session.rollback()
        return _error(422, "invalid_event", exc.message)
    log.info(
        "bureau event %s %s applied",
        envelope.type,
        envelope.event_id,
        extra={"case_no": envelope.case_no},
    )
    return JSONResponse({"status": "ok"})


def _depth(value: object) -> int:
    """How deep a parsed JSON value nests (a scalar is 0), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break  # deep enough to refuse; no need to walk the rest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
    return str(exc)[:200]
