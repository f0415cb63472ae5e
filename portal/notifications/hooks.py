"""Tell the citizen about every change they should know of: a message in the message
centre and an SMS, both written in the transaction of the change (states.after_transition).

Texts live in one template per event, templates/notifications/<event>.txt, with three
blocks: `title` and `body` for the message centre, `sms` for the text message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.cases import states
from portal.cases.models import Case, TimelineEntry
from portal.catalogue.service import get_hall
from portal.delivery.models import Delivery
from portal.licences.kinds import item_for_case
from portal.notifications.models import Message
from portal.notifications.service import create_message
from portal.notifications.sms import queue_sms
from portal.ratings.models import Rating
from portal.resources import TEMPLATES_DIR

log = logging.getLogger(__name__)

# Transitions the citizen hears about (the citizen's own actions are not among them).
NOTIFIED = frozenset(
    {
        "prereview.passed",
        "prereview.returned",
        "case.accepted",
        "case.rejected",
        "correction.requested",
        "clock.suspended",
        "clock.resumed",
        "deadline.extended",
        "inspection.scheduled",
        "case.approved",
        "case.denied",
        "licence.ready_for_pickup",
        "licence.shipped",
        "rating.reply",
        "originals.received",
    }
)
# The bureau finishing a case: the moment to ask for a rating (not a withdrawal: the
# citizen just acted themselves).
FINISHING = frozenset({"case.approved", "case.denied", "case.rejected"})
REMINDER = "rating.reminder"
LINKS = {REMINDER: "/cases/{case_no}/rating"}


def _cn_date(value: Any) -> str:
    return f"{value.year}年{value.month}月{value.day}日" if value else ""


_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR / "notifications")),
    autoescape=False,  # noqa: S701 - plain text (SMS, message bodies shown escaped), never HTML
    undefined=StrictUndefined,  # a typo in a text template fails its test, not silently
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["cn_date"] = _cn_date


@dataclass(frozen=True)
class Texts:
    title: str
    body: str
    sms: str


def render_texts(event: str, context: dict[str, Any]) -> Texts:
    template = _env.get_template(f"{event}.txt")
    ctx = template.new_context(context)
    parts = {name: "".join(template.blocks[name](ctx)).strip() for name in ("title", "body", "sms")}
    return Texts(**parts)


def recipients(session: Session, case: Case) -> list[Account]:
    """Who hears about a case: whoever filed it and, for a case an agent (经办人) filed in
    an enterprise's name, the enterprise too — it is the applicant and the licence is
    its. A closed account (注销) hears nothing: nobody can sign in to read it."""
    ids = [case.account_id]
    if case.on_behalf_of_id is not None and case.on_behalf_of_id != case.account_id:
        ids.append(case.on_behalf_of_id)
    found = [session.get(Account, i) for i in ids]
    return [a for a in found if a is not None and a.closed_at is None]


def notify(session: Session, *, case: Case, event: str, detail: str = "") -> list[Message]:
    """One message in the centre and one SMS about `event` of `case`, to each recipient."""
    item = item_for_case(session, case)  # 食品经营许可（延续） for a renewal
    delivery = session.get(Delivery, case.id)
    hall = get_hall(session, delivery.hall_code) if delivery and delivery.hall_code else None
    context = {
        "case": case,
        "item": item,
        "detail": detail,
        "delivery": delivery,
        "hall": hall,
        "rating": session.get(Rating, case.id),
    }
    try:
        texts = render_texts(event, context)
    except TemplateError:
        # A broken text must not turn the bureau's event away (it would be retried
        # for a day); the citizen still hears that something happened.
        log.exception("notification text %s failed for %s", event, case.case_no)
        label = states.TRANSITIONS[event].label if event in states.TRANSITIONS else "新进展"
        texts = Texts(
            title=label,
            body=f"您的办件 {case.case_no}（{item.name}）：{label}。请登录查看详情。",
            sms=f"【武进区行政审批局】您的办件{case.case_no}：{label}，请登录查看详情。",
        )
    link = LINKS.get(event, "/cases/{case_no}").format(case_no=case.case_no)
    sent = []
    for account in recipients(session, case):
        sent.append(
            create_message(
                session,
                account_id=account.id,
                case_id=case.id,
                type=event,
                title=texts.title,
                body=texts.body,
                link=link,
            )
        )
        queue_sms(
            session,
            account_id=account.id,
            phone=account.phone,
            event=event,
            text=texts.sms,
            path=link,
            case_no=case.case_no,
        )
    return sent


def _reminded(session: Session, case: Case) -> bool:
    query = select(Message.id).where(Message.case_id == case.id, Message.type == REMINDER)
    return session.scalars(query.limit(1)).first() is not None


def on_transition(session: Session, case: Case, key: str, entry: TimelineEntry) -> None:
    if key in NOTIFIED:
        notify(session, case=case, event=key, detail=entry.detail)
    if key in FINISHING and session.get(Rating, case.id) is None and not _reminded(session, case):
        notify(session, case=case, event=REMINDER)
