"""The originals page: 邮寄原件 (上门取件 at an address, or 自行投递) or 窗口递交.

Works without JavaScript: the address selects cascade on the server ("下一步"), as on
the delivery page, and every choice goes through a check page before the bureau hears
of it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from portal.accounts.models import Account
from portal.cases import service as cases
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.catalogue.service import find_item, halls_of
from portal.db import DbSession
from portal.delivery import service as delivery
from portal.delivery.routes import cascade
from portal.errors import Invalid, NotFound
from portal.originals import carriers, service
from portal.originals.models import Originals
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)

ADDRESS_KEYS = tuple(f"address.{name}" for name in service.ADDRESS_KEYS)
KEYS = ("method", "carrier", "tracking_no", "hall", "address_id", *ADDRESS_KEYS)
LABELS = {
    "method": "递交方式",
    "carrier": "快递公司",
    "tracking_no": "快递单号",
    "hall": "递交大厅",
    "address.province": "取件地址省份",
    "address.city": "取件地址城市",
    "address.district": "取件地址区县",
    "address.detail": "取件详细地址",
    "address.recipient": "寄件人姓名",
    "address.phone": "寄件人手机号码",
    "address.postcode": "邮政编码",
}
NEW_ADDRESS = "new"


def _item(session, case: Case) -> Item:
    item = find_item(session, case.item_code)
    assert item is not None
    return item


def _values_of(row: Originals | None) -> dict[str, str]:
    values = dict.fromkeys(KEYS, "")
    if row is None or row.method is None:
        return values
    values.update(
        method=row.method,
        carrier=row.carrier or "",
        tracking_no=row.tracking_no or "",
        hall=row.hall_code or "",
    )
    if row.address:
        values["address_id"] = NEW_ADDRESS
        for name in service.ADDRESS_KEYS:
            code = (
                row.address.get(f"{name}_code")
                if name in ("province", "city", "district")
                else None
            )
            values[f"address.{name}"] = code or row.address.get(name) or ""
    return values


def _submitted(form) -> dict[str, str]:
    values = {}
    for key in KEYS:
        value = form.get(key)
        values[key] = value.strip()[:200] if isinstance(value, str) else ""
    return values


def _with_saved_address(session, account: Account, values: dict[str, str]) -> dict[str, str]:
    """A 常用地址 picked by its radio fills the address fields (404 for another's)."""
    chosen = values["address_id"]
    if values["method"] != "courier_pickup" or chosen in ("", NEW_ADDRESS):
        return values
    saved = delivery.saved_address(session, account=account, address_id=chosen)
    for name, value in delivery.address_values(saved).items():
        values[f"address.{name}"] = value or ""
    return values


def _page(
    request: Request,
    session,
    case: Case,
    item: Item,
    account: Account,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
):
    provinces, cities, districts = cascade(values)
    book = [delivery.book_entry(a) for a in delivery.address_book(session, account=account)]
    if book and not values["address_id"]:
        values["address_id"] = str(book[0]["id"])  # one tap: the latest address is preselected
    context: dict[str, Any] = {
        "case": case,
        "item": item,
        "values": values,
        "errors": errors or {},
        "error_message": message,
        "labels": LABELS,
        "needed": service.originals_needed(item),
        "send_to": service.send_to(session, item),
        "method_options": list(service.METHODS.items()),
        "carrier_options": carriers.CHOICES,
        "carrier_examples": "；".join(
            f"{c.name} 如 {c.example}" for c in carriers.CARRIERS.values()
        ),
        "hall_options": [
            (h.code, f"{h.name}（{h.address}，{h.hours}）") for h in halls_of(session, item)
        ],
        "book_options": [(str(a["id"]), f"{a['place']}（{a['recipient']}）") for a in book]
        + ([(NEW_ADDRESS, "填写新的地址")] if book else []),
        "provinces": provinces,
        "cities": cities,
        "districts": districts,
    }
    return render(request, "originals/form.html", context, status_code=status_code)


@router.get("/cases/{case_no}/originals")
def originals_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = cases.get_own_case(session, account=account, case_no=case_no)
    item = _item(session, case)
    row = session.get(Originals, case.id)
    service.check_can_post(case, item, row)
    return _page(request, session, case, item, account, _values_of(row))


@router.post("/cases/{case_no}/originals")
def originals_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = _item(session, case)
    service.check_can_post(case, item, session.get(Originals, case.id))
    action = form.get("action")
    values = _submitted(form)
    if action in ("cascade", "edit"):
        # "下一步" without JavaScript, or back from the check page: nothing is saved.
        return _page(request, session, case, item, account, values)
    try:
        values = _with_saved_address(session, account, values)
    except NotFound:
        values["address_id"] = NEW_ADDRESS  # deleted meanwhile: ask for the address again
        errors = {"address_id": "所选常用地址已经删除，请重新填写取件地址"}
        return _page(request, session, case, item, account, values, errors, "", 422)
    address = {name: values[f"address.{name}"] for name in service.ADDRESS_KEYS}
    choice: dict[str, Any] = {
        "method": values["method"],
        "carrier": values["carrier"],
        "tracking_no": values["tracking_no"],
        "hall": values["hall"],
        "address": address,
    }
    try:
        if action != "confirm":
            checked = service.checked_originals(session, case=case, item=item, **choice)
            return render(
                request,
                "originals/check.html",
                {
                    "case": case,
                    "item": item,
                    "values": values,
                    "needed": service.originals_needed(item),
                    "send_to": service.send_to(session, item),
                    "choice": service.preview(session, values=checked),
                },
            )
        row = service.post_originals(session, case=case, item=item, **choice)
    except Invalid as exc:
        session.rollback()
        return _page(request, session, case, item, account, values, exc.fields, exc.message, 422)
    flash(request, f"已通知审批局：{service.summary_text(session, row)}。")
    return redirect(f"/cases/{case.case_no}#originals")
