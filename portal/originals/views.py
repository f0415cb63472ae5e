"""How a case's originals read in the JSON answer (kept apart so cases can import it)."""

from __future__ import annotations

from typing import Any

from portal.catalogue.models import Item
from portal.originals import carriers
from portal.originals.models import Originals

ADDRESS_KEYS = ("recipient", "phone", "province", "city", "district", "detail", "postcode")


def originals_view(item: Item, row: Originals | None) -> dict[str, Any] | None:
    """None for an item whose originals are never checked (and nothing was received).

    `row` is the case's Originals row as the caller read it (with the case's other rows).
    """
    needed = [{"code": m["code"], "name": m["name"]} for m in item.materials if m.get("original")]
    if not needed and row is None:
        return None
    view: dict[str, Any] = dict.fromkeys(
        ("method", "carrier", "carrier_name", "tracking_no", "tracking_url", "hall", "address")
        + ("posted_at", "received_at", "received_note")
    )
    view["needed"] = needed
    if row is None:
        return view
    view.update(
        method=row.method,
        carrier=row.carrier,
        carrier_name=carriers.carrier_name(row.carrier) if row.carrier else None,
        tracking_no=row.tracking_no,
        tracking_url=carriers.tracking_url(row.carrier, row.tracking_no),
        hall=row.hall_code,
        address={k: row.address.get(k) for k in ADDRESS_KEYS} if row.address else None,
        posted_at=row.posted_at,
        received_at=row.received_at,
        received_note=row.received_note,
    )
    return view
