"""The licence a case of kind 延续/变更/注销/补办 is about, and its `application` on the wire.

Apart from the wallet's service so that cases (which send `application` in
case.submitted) and licences (which create such cases) need not import each other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.cases.models import Case
from portal.licences.models import Licence


def named_licence(session: Session, case: Case) -> Licence | None:
    """The licence a renewal/change/cancellation/reissue case is about, its applicant's."""
    if case.application_kind == "new" or not case.licence_number:
        return None
    return session.scalars(
        select(Licence).where(
            Licence.number == case.licence_number, Licence.account_id == case.account_id
        )
    ).first()


def application_of(session: Session, case: Case) -> dict[str, Any] | None:
    """`application` of case.submitted: the kind and the licence it is about; None: new."""
    if case.application_kind == "new":
        return None
    licence = named_licence(session, case)
    named: dict[str, Any] = {"number": case.licence_number or ""}
    if licence is not None:
        named["name"] = licence.name
        # Refinement: the validity as the portal holds it, for the renewal's new term.
        named["valid_from"] = licence.valid_from.isoformat() if licence.valid_from else None
        named["valid_to"] = licence.valid_to.isoformat() if licence.valid_to else None
    return {"kind": case.application_kind, "licence": named}
