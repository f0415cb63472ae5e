"""What a case applies for (v1.1 `application`): new, or 延续/变更/注销/补办 of a licence.

The portal sends it in `case.submitted`; it is read from the latest one received, which
the case's history keeps whole, so no column has to follow it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bureau.models import BureauCase, CaseEvent, Licence

KIND_LABELS = {
    "new": "新办",
    "renewal": "延续",
    "change": "变更",
    "cancellation": "注销",
    "reissue": "补办",
}
# What each kind does to the licence it names, for the staff who decide.
EFFECTS = {
    "renewal": "准予后换发新证，沿用原证编号，有效期自原证届满次日起重新计算。",
    "change": "准予后按变更后的内容换发证照，原编号沿用（另填编号则原证作废）。",
    "cancellation": "准予后原证照注销，不颁发新证。",
    "reissue": "准予后补发证照，编号和有效期与原证相同。",
}
_KIND_SUFFIX = re.compile(r"（(延续|变更|注销|补办)）$")
NEW = {"kind": "new", "licence": None}


def application_of(session: Session, case: BureauCase) -> dict[str, Any]:
    """The case's `application` as last submitted; {"kind": "new"} when it carried none."""
    data = session.scalar(
        select(CaseEvent.data)
        .where(
            CaseEvent.case_id == case.id,
            CaseEvent.direction == "in",
            CaseEvent.type == "case.submitted",
        )
        .order_by(CaseEvent.id.desc())
        .limit(1)
    )
    application = (data or {}).get("application") or {}
    if application.get("kind") not in KIND_LABELS or application.get("kind") == "new":
        return dict(NEW)
    return {"kind": application["kind"], "licence": dict(application.get("licence") or {})}


def held_licence(session: Session, application: dict[str, Any]) -> Licence | None:
    """The licence the application names, when this bureau issued it."""
    number = (application.get("licence") or {}).get("number")
    if not number:
        return None
    return session.scalars(select(Licence).where(Licence.number == number)).first()


def view(session: Session, case: BureauCase) -> dict[str, Any]:
    """For the console and the staff API: the kind, its label, the licence and its effect."""
    application = application_of(session, case)
    kind = application["kind"]
    named = application["licence"] or {}
    held = held_licence(session, application) if kind != "new" else None
    return {
        "kind": kind,
        "label": KIND_LABELS[kind],
        "licence": named or None,
        "held": {
            "number": held.number,
            "valid_from": held.valid_from.isoformat(),
            "valid_to": held.valid_to.isoformat() if held.valid_to else None,
            "revoked": held.revoked_at is not None,
        }
        if held is not None
        else None,
        "effect": EFFECTS.get(kind, ""),
    }


def item_name_on_licence(item_name: str) -> str:
    """The item as printed on a licence: 食品经营许可（延续） → 食品经营许可."""
    return _KIND_SUFFIX.sub("", item_name)


def _as_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def earlier_term(session: Session, application: dict[str, Any]) -> tuple[date | None, date | None]:
    """The validity of the licence named: this bureau's record first, else the portal's."""
    held = held_licence(session, application)
    if held is not None:
        return held.valid_from, held.valid_to
    named = application.get("licence") or {}
    return _as_date(named.get("valid_from")), _as_date(named.get("valid_to"))


def renewed_from(valid_to: date | None, today: date) -> date:
    """A renewal's term starts the day after the earlier one ends (today if that passed)."""
    if valid_to is None:
        return today
    return max(today, valid_to + timedelta(days=1))


def renewed_ahead(session: Session, licence: Licence, today: date) -> bool:
    """A licence renewed before its earlier term ended: the new term starts later, and
    until then the number is valid under the earlier one (the verification page says so)."""
    if licence.valid_from <= today:
        return False
    case = session.get(BureauCase, licence.case_id)
    return case is not None and application_of(session, case)["kind"] == "renewal"
