"""证照快递 / 窗口领取: the applicant's choice, checked, kept and sent to the bureau."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.catalogue.service import get_hall, halls_of
from portal.clock import utcnow
from portal.delivery.divisions import Division, postal_text, tree
from portal.delivery.models import Delivery, SavedAddress
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange.payloads import delivery_event_data
from portal.originals.carriers import carrier_name, tracking_url
from portal.security import mask_name, mask_phone

METHODS = {"express": "快递寄送", "pickup": "窗口领取"}
MOBILE_RE = re.compile(r"1[3-9]\d{9}")
POSTCODE_RE = re.compile(r"\d{6}")
ADDRESS_FIELDS = ("recipient", "phone", "province", "city", "district", "detail", "postcode")
RECIPIENT_MAX, DETAIL_MIN, DETAIL_MAX = 30, 4, 120


@dataclass(frozen=True)
class Address:
    recipient: str
    phone: str
    province: Division
    city: Division
    district: Division
    detail: str
    postcode: str | None


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int) else ""
    return value.replace("\x00", "").strip()


def normalise_mobile(value: str) -> str:
    """Spaces, hyphens and a +86 prefix are how people write numbers; the digits count."""
    digits = re.sub(r"[\s\-]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    return digits


def clean_address(raw: dict[str, Any], *, prefix: str = "address.", who: str = "收件人") -> Address:
    """Every part of an address checked, with a 中文 reason per field (422).

    `who` names the person in the messages: 收件人 for a delivery, 寄件人 for a pickup.
    """
    errors: dict[str, str] = {}
    divisions = tree()
    recipient = _text(raw, "recipient")
    if not recipient:
        errors["recipient"] = f"请填写{who}姓名"
    elif len(recipient) > RECIPIENT_MAX:
        errors["recipient"] = f"{who}姓名不能超过 {RECIPIENT_MAX} 个字"
    phone = normalise_mobile(_text(raw, "phone"))
    if not phone:
        errors["phone"] = f"请填写{who}的手机号码"
    elif not MOBILE_RE.fullmatch(phone):
        errors["phone"] = "手机号码应为 11 位数字，以 1 开头，如 13912345678"
    province = city = district = None
    province_value = _text(raw, "province")
    city_value = _text(raw, "city")
    district_value = _text(raw, "district")
    if not province_value:
        errors["province"] = "请选择省份"
    else:
        province = divisions.find(divisions.provinces, province_value)
        if province is None:
            errors["province"] = "没有这个省份，请从列表中选择"
    if province is not None:
        cities = divisions.children(province.code)
        if not city_value:
            errors["city"] = "请选择城市"
        else:
            city = divisions.find(cities, city_value)
            if city is None and city_value == province.name:
                # 北京市 written again as its own city: GB/T 2260 calls that level 市辖区.
                city = cities[0] if len(cities) == 1 else None
            if city is None:
                errors["city"] = f"所选城市不属于{province.name}，请重新选择城市"
    elif city_value and "province" not in errors:
        errors["city"] = "请先选择省份，再选择城市"
    if city is not None:
        if not district_value:
            errors["district"] = "请选择区县"
        else:
            district = divisions.find(divisions.children(city.code), district_value)
            if district is None:
                assert province is not None  # a city is only ever found under its province
                where = city.name if city.name not in ("市辖区", "县") else province.name
                errors["district"] = f"所选区县不属于{where}，请重新选择区县"
    elif district_value and not errors.get("city") and not errors.get("province"):
        errors["district"] = "请先选择城市，再选择区县"
    detail = _text(raw, "detail")
    if not detail:
        errors["detail"] = "请填写详细地址（街道、小区、楼栋和门牌号）"
    elif len(detail) < DETAIL_MIN:
        errors["detail"] = "详细地址太短，请写明街道和门牌号"
    elif len(detail) > DETAIL_MAX:
        errors["detail"] = f"详细地址不能超过 {DETAIL_MAX} 个字"
    postcode = _text(raw, "postcode") or None
    if postcode is not None and not POSTCODE_RE.fullmatch(postcode):
        errors["postcode"] = "邮政编码应为 6 位数字，不知道可以不填"
    if errors:
        raise Invalid(
            {prefix + k: v for k, v in errors.items()}, f"{who[:1]}件地址有误，请按提示修改。"
        )
    assert province and city and district
    return Address(recipient, phone, province, city, district, detail, postcode)


def changeable(delivery: Delivery | None) -> bool:
    """Once the bureau has posted the licence or laid it out at a hall, the choice is final."""
    return delivery is None or (
        delivery.shipped_at is None and delivery.ready_at is None and delivery.delivered_at is None
    )


def check_can_choose(case: Case, delivery: Delivery | None) -> None:
    """409 for a case whose licence can no longer be sent elsewhere, or will never exist."""
    if not changeable(delivery):
        raise Conflict(
            "证照已经寄出或已通知领取，不能再修改领取方式。如需帮助请拨打 12345。",
            code="delivery_locked",
        )
    if not states.allowed(case, "delivery.selected"):
        raise Conflict(
            f"办件当前状态为“{states.STATUS_LABELS[case.status]}”，没有需要领取的证照。",
            code="wrong_status",
        )
    if case.application_kind == "cancellation":  # 注销 issues no licence to deliver
        raise Conflict("注销申请不颁发证照，无需选择领取方式。", code="no_licence")


def choose_delivery(
    session: Session,
    *,
    case: Case,
    item: Item,
    method: str,
    hall: str | None = None,
    address: dict[str, Any] | None = None,
) -> Delivery:
    """Keep the applicant's choice; the bureau hears of it unless the case is still a draft."""
    delivery = session.get(Delivery, case.id)
    values = checked_choice(
        session, case=case, item=item, method=method, hall=hall, address=address
    )
    before = delivery_event_data(delivery)
    if delivery is None:
        delivery = Delivery(case_id=case.id, method=method)
        session.add(delivery)
    delivery.method = method
    for key, value in values.items():
        setattr(delivery, key, value)
    if delivery_event_data(delivery) == before:
        return delivery  # the same choice again: nothing new to tell the bureau
    delivery.selected_at = utcnow()
    if method == "express":
        remember_address(session, account_id=case.account_id, values=values)
    session.flush()
    detail = summary_text(session, delivery)
    if case.status == states.DRAFT:
        # The bureau does not know a draft yet: the choice travels inside case.submitted.
        states.record(
            session,
            case,
            type="delivery.selected",
            label=states.TRANSITIONS["delivery.selected"].label,
            detail=detail,
            source="citizen",
        )
        case.updated_at = utcnow()
    else:
        states.apply(
            session,
            case,
            "delivery.selected",
            detail=detail,
            event_data=delivery_event_data(delivery),
        )
    return delivery


def checked_choice(
    session: Session,
    *,
    case: Case,
    item: Item,
    method: str,
    hall: str | None = None,
    address: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The delivery columns of a valid choice (409 or 422 otherwise); nothing is kept."""
    check_can_choose(case, session.get(Delivery, case.id))
    if method not in METHODS:
        raise Invalid({"method": "请选择快递寄送或窗口领取"})
    if method == "express" and not item.express:
        raise Conflict("本事项的证照不提供快递寄送，请选择窗口领取。", code="no_express")
    values: dict[str, Any] = dict.fromkeys(
        ("hall_code", "recipient", "phone", "province_code", "city_code", "district_code")
        + ("province", "city", "district", "detail", "postcode")
    )
    if method == "pickup":
        halls = {h.code: h for h in halls_of(session, item)}
        hall = (hall or "").strip()
        if not halls:
            raise Invalid({"hall": "本事项没有可以领取证照的大厅，请选择快递寄送"})
        if hall not in halls:
            raise Invalid(
                {"hall": "请选择领取证照的大厅" if not hall else "本事项的证照不能在所选大厅领取"}
            )
        values["hall_code"] = hall
    else:
        clean = clean_address(address or {})
        values.update(
            recipient=clean.recipient,
            phone=clean.phone,
            province_code=clean.province.code,
            city_code=clean.city.code,
            district_code=clean.district.code,
            province=clean.province.name,
            city=clean.city.name,
            district=clean.district.name,
            detail=clean.detail,
            postcode=clean.postcode,
        )
    return values


def preview(session: Session, *, method: str, values: dict[str, Any]) -> dict[str, Any]:
    """What the check page shows of a choice not yet kept (`checked_choice` values)."""
    hall = get_hall(session, values["hall_code"]) if values["hall_code"] else None
    place = postal_text(values["province"] or "", values["city"] or "", values["district"] or "")
    return {
        "method_label": METHODS[method],
        "hall": hall,
        "place": place + (values["detail"] or ""),
        "recipient": values["recipient"],
        "phone": values["phone"],
        "postcode": values["postcode"],
    }


def summary_text(session: Session, delivery: Delivery) -> str:
    """One line for the timeline: where the licence goes, without the phone number."""
    if delivery.method == "pickup":
        hall = get_hall(session, delivery.hall_code) if delivery.hall_code else None
        return f"窗口领取：{hall.name if hall else delivery.hall_code}"
    place = postal_text(delivery.province or "", delivery.city or "", delivery.district or "")
    return f"快递寄送：{place}{delivery.detail or ''}，收件人 {mask_name(delivery.recipient)}"


BOOK_SIZE = 5  # addresses offered again; older ones stay until deleted but are not shown


def remember_address(session: Session, *, account_id: int, values: dict[str, Any]) -> SavedAddress:
    """Keep an express address in the account's book; the same address again moves it up."""
    key = {k: values[k] for k in ("recipient", "phone", "district_code", "detail")}
    saved = session.scalars(
        select(SavedAddress).where(
            SavedAddress.account_id == account_id,
            *(getattr(SavedAddress, k) == v for k, v in key.items()),
        )
    ).first()
    if saved is None:
        saved = SavedAddress(account_id=account_id, **key)
        session.add(saved)
    for name in ("province_code", "city_code", "province", "city", "district", "postcode"):
        setattr(saved, name, values[name])
    saved.last_used_at = utcnow()
    return saved


def address_book(session: Session, *, account: Account) -> list[SavedAddress]:
    """The account's most recently used addresses, newest first."""
    query = (
        select(SavedAddress)
        .where(SavedAddress.account_id == account.id)
        .order_by(SavedAddress.last_used_at.desc(), SavedAddress.id.desc())
        .limit(BOOK_SIZE)
    )
    return list(session.scalars(query))


def saved_address(session: Session, *, account: Account, address_id: int | str) -> SavedAddress:
    """One address of the account's book; another account's is 404 exactly like a missing one."""
    try:
        number = int(address_id)
    except (TypeError, ValueError):
        number = 0
    saved = session.get(SavedAddress, number) if 0 < number < 2**31 else None
    if saved is None or saved.account_id != account.id:
        raise NotFound("没有这个常用地址，可能已经删除。", code="address_not_found")
    return saved


def delete_address(session: Session, *, account: Account, address_id: int | str) -> SavedAddress:
    """Remove an address from the book; the cases that used it keep their own copy."""
    saved = saved_address(session, account=account, address_id=address_id)
    session.delete(saved)
    return saved


def book_entry(saved: SavedAddress) -> dict[str, Any]:
    """How the book shows an address: the place in full, the recipient and phone masked."""
    return {
        "id": saved.id,
        "place": postal_text(saved.province, saved.city, saved.district) + saved.detail,
        "recipient": f"{mask_name(saved.recipient)}，{mask_phone(saved.phone)}",
        "last_used_at": saved.last_used_at,
    }


def address_values(delivery: Delivery | SavedAddress) -> dict[str, Any]:
    """A kept express address as the form (codes) or the API (names) takes it."""
    return {
        "recipient": delivery.recipient,
        "phone": delivery.phone,
        "province": delivery.province_code,
        "city": delivery.city_code,
        "district": delivery.district_code,
        "detail": delivery.detail,
        "postcode": delivery.postcode or "",
    }


def postage_text(session: Session, item: Item) -> str:
    """Who pays for posting the licence, as the item's first hall that says so states it."""
    for hall in halls_of(session, item):
        if hall.postage:
            return hall.postage
    return ""


def delivery_info(session: Session, *, case: Case, item: Item) -> dict[str, Any]:
    """What the case page says about the licence's way home, computed here."""
    return delivery_info_given(
        session, case=case, item=item, delivery=session.get(Delivery, case.id)
    )


def delivery_info_given(
    session: Session, *, case: Case, item: Item, delivery: Delivery | None
) -> dict[str, Any]:
    """`delivery_info` from the case's delivery row, for a caller that has read it already."""
    info: dict[str, Any] = {
        "chosen": delivery is not None,
        "can_change": changeable(delivery) and states.allowed(case, "delivery.selected"),
        "express_offered": item.express,
        "postage": postage_text(session, item) if item.express else "",
        "state": None,
    }
    if delivery is None:
        return info
    info["method_label"] = METHODS.get(delivery.method, delivery.method)
    if delivery.method == "express" and delivery.province:
        info["address"] = postal_text(
            delivery.province, delivery.city or "", delivery.district or ""
        ) + (delivery.detail or "")
        info["recipient"] = f"{delivery.recipient}，{mask_phone(delivery.phone)}"
    if delivery.method == "pickup" and delivery.hall_code:
        hall = get_hall(session, delivery.hall_code)
        info["hall"] = hall
    if delivery.delivered_at is not None:
        info["state"] = "delivered"
    elif delivery.shipped_at is not None:
        info["state"] = "shipped"
    elif delivery.ready_at is not None:
        info["state"] = "ready"
    if delivery.tracking_no:
        # The carrier's own query page, when the bureau's carrier is one we know.
        info["carrier_name"] = carrier_name(delivery.carrier)
        info["tracking_url"] = tracking_url(delivery.carrier, delivery.tracking_no)
    info["delivery"] = delivery
    return info
