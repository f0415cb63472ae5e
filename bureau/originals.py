"""材料寄递 at the back office: what the applicant said about the originals, and the receipt.

Nothing new is stored for it: the case's history (`case_events`) already holds every
`originals.posted` received and the `originals.received` the staff sent, and the latest
of each is the state. So the back office needs no schema change for this refinement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from bureau.models import BureauCase, CaseEvent

POSTED, RECEIVED = "originals.posted", "originals.received"
METHOD_LABELS = {
    "courier_pickup": "邮寄（快递员上门取件）",
    "dropoff": "邮寄（申请人到网点寄出）",
    "counter": "窗口递交",
}


def state(session: Session, case: BureauCase) -> dict[str, Any]:
    """{posted: data of the latest originals.posted or None, posted_at, received: data or None}."""
    rows = session.execute(
        select(CaseEvent.type, CaseEvent.data, CaseEvent.occurred_at)
        .where(CaseEvent.case_id == case.id, CaseEvent.type.in_((POSTED, RECEIVED)))
        .order_by(CaseEvent.id)
    ).all()
    return _fold((t, d, at) for t, d, at in rows)


def state_of_loaded(case: BureauCase) -> dict[str, Any]:
    """The same, from a case whose events are loaded (the console and the staff API)."""
    return _fold(
        (e.type, e.data, e.occurred_at) for e in case.events if e.type in (POSTED, RECEIVED)
    )


def _fold(rows) -> dict[str, Any]:
    result: dict[str, Any] = {"posted": None, "posted_at": None, "received": None}
    for type_, data, at in rows:
        if type_ == POSTED:
            result["posted"], result["posted_at"] = data, at
        else:
            result["received"] = data
    return result


def _state(case: BureauCase) -> dict[str, Any]:
    session = object_session(case)
    if session is None or case.id is None:
        return {"posted": None, "posted_at": None, "received": None}
    return state(session, case)


def not_received(case: BureauCase) -> str | None:
    """Guard of originals.posted: a choice may change until the staff signed for them."""
    return "原件已经签收，不能再更改寄递信息。" if _state(case)["received"] else None


def awaited(case: BureauCase) -> str | None:
    """Guard of originals.received: the applicant said they would post or bring them."""
    now = _state(case)
    if now["received"]:
        return "原件已经签收过。"
    if not now["posted"]:
        return "申请人尚未提交原件寄递信息。"
    return None


def view(case: BureauCase) -> dict[str, Any] | None:
    """What the console shows: method, carrier and number, address or hall, the receipt."""
    now = state_of_loaded(case)
    posted = now["posted"]
    if posted is None and now["received"] is None:
        return None
    result: dict[str, Any] = {"received": now["received"], "posted_at": now["posted_at"]}
    if posted:
        address = posted.get("address") or {}
        result.update(
            method=posted.get("method"),
            method_label=METHOD_LABELS.get(posted.get("method", ""), posted.get("method", "")),
            carrier=posted.get("carrier"),
            tracking_no=posted.get("tracking_no"),
            hall=posted.get("hall"),
            address_text="".join(
                str(address.get(k) or "") for k in ("province", "city", "district", "detail")
            ),
            sender=f"{address.get('recipient', '')}，{address.get('phone', '')}" if address else "",
            materials=posted.get("materials") or [],
        )
    return result
