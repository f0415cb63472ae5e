"""材料寄递: the applicant posts the originals the bureau must check, or brings them.

The choice is checked here, kept on the case (one row, a later choice replaces it) and
sent to the bureau as `originals.posted` through the state table, so the timeline entry
and the outbox message commit with it. The bureau's `originals.received` is applied by
`apply_received` (registered by portal.composition).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Hall, Item
from portal.catalogue.service import get_hall, halls_of
from portal.clock import utcnow
from portal.delivery.divisions import postal_text
from portal.delivery.service import clean_address, remember_address
from portal.errors import Conflict, Invalid
from portal.exchange import payloads
from portal.originals import carriers
from portal.originals.models import Originals
from portal.originals.schemas import ReceivedIn
from portal.security import mask_name

METHODS = {
    "courier_pickup": "邮寄原件：预约快递员上门取件",
    "dropoff": "邮寄原件：自行到快递网点寄出",
    "counter": "窗口递交：带原件到政务服务大厅",
}
POSTED = ("courier_pickup", "dropoff")
ADDRESS_KEYS = ("recipient", "phone", "province", "city", "district", "detail", "postcode")


def originals_needed(item: Item) -> list[dict[str, Any]]:
    """The item's materials whose original the bureau checks (catalogue `original`)."""
    return [{"code": m["code"], "name": m["name"]} for m in item.materials if m.get("original")]


def send_to(session: Session, item: Item) -> Hall | None:
    """Where posted originals go: the item's first hall, the one that handles its cases."""
    halls = halls_of(session, item)
    return halls[0] if halls else None


def check_can_post(case: Case, item: Item, originals: Originals | None) -> None:
    """409 unless the applicant may (re)state how the originals reach the bureau now."""
    if not originals_needed(item):
        raise Conflict("本事项不需要寄送或递交原件。", code="no_originals")
    if originals is not None and originals.received_at is not None:
        raise Conflict("审批局已经签收原件，不能再修改寄递信息。", code="originals_received")
    if not states.allowed(case, "originals.posted"):
        if case.status in (states.DRAFT, states.PREREVIEW, states.RETURNED, states.PASSED):
            message = "正式提交申请后，才能寄送或递交原件。"
        else:
            message = f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，不需要再寄送原件。"
        raise Conflict(message, code="wrong_status")


def can_post(case: Case, item: Item, originals: Originals | None) -> bool:
    try:
        check_can_post(case, item, originals)
    except Conflict:
        return False
    return True


def checked_originals(
    session: Session,
    *,
    case: Case,
    item: Item,
    method: str,
    carrier: str | None = None,
    tracking_no: str | None = None,
    hall: str | None = None,
    address: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The columns of a valid choice (409 or 422 with a 中文 reason per field); nothing kept."""
    check_can_post(case, item, session.get(Originals, case.id))
    errors: dict[str, str] = {}
    values: dict[str, Any] = {
        "method": method,
        "carrier": None,
        "tracking_no": None,
        "hall_code": None,
        "address": None,
    }
    if method not in METHODS:
        raise Invalid({"method": "请选择邮寄原件（上门取件或自行投递）或窗口递交"})
    if method in POSTED:
        carrier = (carrier or "").strip()
        number = carriers.normalise_tracking(tracking_no or "")
        if carrier not in carriers.CARRIERS:
            errors["carrier"] = "请从列表中选择快递公司"
        elif message := carriers.tracking_error(carrier, number):
            errors["tracking_no"] = message
        values.update(carrier=carrier, tracking_no=number)
        if method == "courier_pickup":
            try:
                clean = clean_address(address or {}, who="寄件人")
            except Invalid as exc:
                errors.update(exc.fields)
            else:
                values["address"] = {
                    "recipient": clean.recipient,
                    "phone": clean.phone,
                    "province": clean.province.name,
                    "city": clean.city.name,
                    "district": clean.district.name,
                    "detail": clean.detail,
                    "postcode": clean.postcode,
                    "province_code": clean.province.code,
                    "city_code": clean.city.code,
                    "district_code": clean.district.code,
                }
    else:
        halls = {h.code for h in halls_of(session, item)}
        hall = (hall or "").strip()
        if hall not in halls:
            errors["hall"] = "请选择递交原件的大厅" if not hall else "本事项不能在所选大厅递交原件"
        values["hall_code"] = hall
    if errors:
        raise Invalid(errors, "原件寄递信息有误，请按提示修改。")
    return values


def post_originals(
    session: Session,
    *,
    case: Case,
    item: Item,
    method: str,
    carrier: str | None = None,
    tracking_no: str | None = None,
    hall: str | None = None,
    address: dict[str, Any] | None = None,
) -> Originals:
    """Keep how the originals reach the bureau and tell the bureau (`originals.posted`)."""
    values = checked_originals(
        session,
        case=case,
        item=item,
        method=method,
        carrier=carrier,
        tracking_no=tracking_no,
        hall=hall,
        address=address,
    )
    row = session.get(Originals, case.id)
    if row is not None and all(getattr(row, k) == v for k, v in values.items()):
        return row  # the same choice again: nothing new to tell the bureau
    if row is None:
        row = Originals(case_id=case.id)
        session.add(row)
    for key, value in values.items():
        setattr(row, key, value)
    row.materials = originals_needed(item)
    row.posted_at = utcnow()
    if row.address is not None:
        # Where the courier collected goes into the address book, like a delivery address.
        remember_address(session, account_id=case.account_id, values=row.address)
    session.flush()
    states.apply(
        session,
        case,
        "originals.posted",
        detail=summary_text(session, row),
        event_data=payloads.originals_posted_data(row),
    )
    return row


def summary_text(session: Session, row: Originals) -> str:
    """One line for the timeline, without the phone number."""
    if row.method == "counter":
        hall = get_hall(session, row.hall_code) if row.hall_code else None
        return f"窗口递交原件：{hall.name if hall else row.hall_code}"
    text = f"{carriers.carrier_name(row.carrier)} 单号 {row.tracking_no}"
    if row.method == "courier_pickup" and row.address:
        a = row.address
        place = postal_text(a["province"], a["city"], a["district"]) + a["detail"]
        text += f"，上门取件：{place}，寄件人 {mask_name(a['recipient'])}"
    else:
        text += "，自行到网点寄出"
    return text


def preview(session: Session, *, values: dict[str, Any]) -> dict[str, Any]:
    """What the check page shows of a choice not yet kept (`checked_originals` values)."""
    hall = get_hall(session, values["hall_code"]) if values["hall_code"] else None
    address = values["address"]
    return {
        "method_label": METHODS[values["method"]],
        "carrier_name": carriers.carrier_name(values["carrier"]) if values["carrier"] else "",
        "tracking_no": values["tracking_no"],
        "hall": hall,
        "place": postal_text(address["province"], address["city"], address["district"])
        + address["detail"]
        if address
        else "",
        "recipient": address["recipient"] if address else "",
        "phone": address["phone"] if address else "",
    }


def apply_received(ctx: Any, d: ReceivedIn) -> None:
    """The bureau signed for the originals (`originals.received`, any status it knows).

    Accepted also when the applicant never said how they would hand them in (brought
    them unannounced); a second receipt is 409 and changes nothing.
    """
    ctx.require("originals.received")
    row = ctx.session.get(Originals, ctx.case.id)
    if row is not None and row.received_at is not None:
        raise Conflict("originals already received", code="conflict")
    if row is None:
        row = Originals(case_id=ctx.case.id, method=None, materials=[], posted_at=None)
        ctx.session.add(row)
    row.received_at = d.received_at or ctx.at
    row.received_note = d.note or None
    detail = "原件已送达审批局" + (f"：{d.note}" if d.note else "")
    ctx.apply("originals.received", detail)


def originals_info(
    session: Session, *, case: Case, item: Item, row: Originals | None
) -> dict[str, Any] | None:
    """What the case page shows: the originals asked for and a small timeline.

    `row` is the case's Originals row as the caller read it (with the case's other rows).
    """
    needed = originals_needed(item)
    if not needed and row is None:
        return None
    info: dict[str, Any] = {
        "needed": needed,
        "chosen": row is not None and row.method is not None,
        "can_choose": can_post(case, item, row),
        # Before the formal submission there is nothing to post yet: say when it comes.
        "later": case.status in (states.DRAFT, states.PREREVIEW, states.RETURNED, states.PASSED),
        "steps": [],
    }
    if row is None:
        return info
    steps = info["steps"]
    if row.method in POSTED:
        steps.append(
            {
                "label": "已寄出",
                "at": row.posted_at,
                "text": f"{carriers.carrier_name(row.carrier)} 单号 {row.tracking_no}"
                + (
                    "（快递员上门取件）" if row.method == "courier_pickup" else "（自行到网点寄出）"
                ),
                "url": carriers.tracking_url(row.carrier, row.tracking_no),
                "carrier_name": carriers.carrier_name(row.carrier),
            }
        )
    elif row.method == "counter":
        hall = get_hall(session, row.hall_code) if row.hall_code else None
        place = f"{hall.name}（{hall.address}）" if hall else row.hall_code
        steps.append({"label": "将到窗口递交", "at": row.posted_at, "text": place})
    if row.received_at is not None:
        steps.append({"label": "审批局已签收", "at": row.received_at, "text": row.received_note})
    else:
        steps.append({"label": "等待审批局签收", "at": None, "text": "", "pending": True})
    return info
