"""12345: a question (咨询) or complaint (投诉), forwarded to the bureau, answered back.

Time limits shown to the citizen (this portal's commitment, counted in working
days after the day of submission): a question is answered within 1 working
day, a complaint within 5 working days.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.cases import states
from portal.cases.models import Case
from portal.cases.service import get_own_case
from portal.clock import add_working_days, span_official, to_cst, today_cst, working_days_left
from portal.consultations.models import Consultation
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange import schemas
from portal.exchange.outbox import enqueue_event
from portal.notifications.service import create_message

KINDS = {"consult": "咨询", "complaint": "投诉"}
ANSWER_WORKING_DAYS = {"consult": 1, "complaint": 5}
SUBJECT_MAX = 50
BODY_MIN, BODY_MAX = 5, 2000
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
NOT_FOUND_MESSAGE = "没有找到该咨询投诉。"


def check_consultation(
    session: Session,
    *,
    account: Account,
    kind: Any,
    subject: Any,
    body: Any,
    case_no: Any = "",
    contact_name: Any = "",
    contact_phone: Any = "",
) -> dict[str, Any]:
    """Every field checked (422 with 中文 reasons); the case, if named, must be the account's."""
    errors: dict[str, str] = {}
    text = {
        k: (v.strip() if isinstance(v, str) else "")
        for k, v in {
            "subject": subject,
            "body": body,
            "case_no": case_no,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
        }.items()
    }
    for key in ("subject", "body", "contact_name"):
        if _has_control(text[key], allow_newlines=key == "body"):
            errors[key] = "内容中有无法识别的控制字符，请删除后重新填写"
    if kind not in KINDS:
        errors["kind"] = "请选择咨询或投诉"
    if not text["subject"]:
        errors["subject"] = "请填写标题"
    elif len(text["subject"]) > SUBJECT_MAX:
        errors["subject"] = f"标题不能超过 {SUBJECT_MAX} 个字"
    if len(text["body"]) < BODY_MIN:
        errors["body"] = f"请把问题写清楚，至少 {BODY_MIN} 个字"
    elif len(text["body"]) > BODY_MAX:
        errors["body"] = f"内容不能超过 {BODY_MAX} 个字"
    name = text["contact_name"] or account.agent_name or account.name
    if len(name) > 50:
        errors["contact_name"] = "联系人姓名不能超过 50 个字"
    phone = (text["contact_phone"] or account.phone).replace(" ", "")
    if not MOBILE_RE.match(phone):
        errors["contact_phone"] = "请填写 11 位手机号码，用于回访"
    case = None
    if text["case_no"]:
        try:
            case = get_own_case(session, account=account, case_no=text["case_no"][:20])
        except NotFound:
            errors["case_no"] = "没有找到这个办件编号（只能选择您自己的办件）"
    if errors:
        raise Invalid(errors, "咨询投诉内容有误，请按提示修改。")
    return {
        "kind": kind,
        "subject": text["subject"],
        "body": text["body"],
        "case": case,
        "contact_name": name,
        "contact_phone": phone,
    }


def _has_control(text: str, *, allow_newlines: bool) -> bool:
    allowed = {"\n", "\r", "\t"} if allow_newlines else set()
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def due_date_for(kind: str, today: date | None = None) -> date:
    return add_working_days(today or today_cst(), ANSWER_WORKING_DAYS[kind])


def submit_consultation(session: Session, *, account: Account, **fields: Any) -> Consultation:
    """Record the question or complaint and send `consultation.submitted` to the bureau."""
    checked = check_consultation(session, account=account, **fields)
    case: Case | None = checked["case"]
    consultation = Consultation(
        consultation_id=str(uuid.uuid4()),
        account_id=account.id,
        case_id=case.id if case else None,
        kind=checked["kind"],
        subject=checked["subject"],
        body=checked["body"],
        contact_name=checked["contact_name"],
        contact_phone=checked["contact_phone"],
        due_date=due_date_for(checked["kind"]),
    )
    session.add(consultation)
    session.flush()
    # A draft was never sent, so for the bureau it does not exist: send it caseless then.
    known_case = case if case is not None and case.status != states.DRAFT else None
    enqueue_event(
        session,
        type="consultation.submitted",
        case_no=known_case.case_no if known_case else None,
        ordering_key=known_case.case_no if known_case else f"consultation:{consultation.id}",
        data={
            "consultation_id": consultation.consultation_id,
            "kind": consultation.kind,
            "subject": consultation.subject,
            "body": consultation.body,
            "contact": {"name": consultation.contact_name, "phone": consultation.contact_phone},
        },
    )
    if case is not None:
        states.record(
            session,
            case,
            type="consultation.submitted",
            label=f"提交{KINDS[consultation.kind]}",
            detail=consultation.subject,
            source="citizen",
        )
    return consultation


def list_own(session: Session, *, account: Account) -> list[Consultation]:
    query = (
        select(Consultation)
        .where(Consultation.account_id == account.id)
        .order_by(Consultation.created_at.desc(), Consultation.id.desc())
    )
    return list(session.scalars(query))


def get_own(session: Session, *, account: Account, consultation_id: str) -> Consultation:
    """The account's consultation; another account's is 404 exactly like a missing one."""
    found = session.scalars(
        select(Consultation).where(
            Consultation.consultation_id == consultation_id[:36].replace("\x00", ""),
            Consultation.account_id == account.id,
        )
    ).first()
    if found is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="consultation_not_found")
    return found


def apply_answer(session: Session, envelope: schemas.EnvelopeIn, data: BaseModel) -> None:
    """`consultation.answered` from the bureau: keep the answer, tell the citizen."""
    assert isinstance(data, schemas.ConsultationAnsweredIn)
    consultation = session.scalars(
        select(Consultation).where(Consultation.consultation_id == data.consultation_id)
    ).first()
    if consultation is None:
        raise NotFound(f"unknown consultation_id {data.consultation_id}", code="unknown_case")
    if consultation.answer is not None:
        raise Conflict("consultation already answered", code="conflict")
    consultation.answer = data.answer
    consultation.answered_at = envelope.occurred_at
    label = KINDS[consultation.kind]
    create_message(
        session,
        account_id=consultation.account_id,
        case_id=consultation.case_id,
        type="consultation.answered",
        title=f"您的{label}“{consultation.subject}”已答复",
        body=data.answer,
        link=f"/consultations/{consultation.consultation_id}",
    )
    if consultation.case_id is not None:
        case = session.get(Case, consultation.case_id)
        if case is not None:
            entry = states.record(
                session,
                case,
                type="consultation.answered",
                label=f"{label}已答复",
                detail=data.answer,
                source="bureau",
            )
            entry.at = envelope.occurred_at
    session.flush()


def consultation_view(consultation: Consultation, case_no: str | None = None) -> dict[str, Any]:
    today = today_cst()
    answered = consultation.answer is not None
    return {
        "consultation_id": consultation.consultation_id,
        "kind": consultation.kind,
        "kind_label": KINDS[consultation.kind],
        "subject": consultation.subject,
        "body": consultation.body,
        "case_no": case_no,
        "contact": {"name": consultation.contact_name, "phone": consultation.contact_phone},
        "created_at": consultation.created_at,
        "due_date": consultation.due_date,
        "due_provisional": not span_official(
            to_cst(consultation.created_at).date(), consultation.due_date
        ),
        "days_left": None if answered else working_days_left(today, consultation.due_date),
        "answer": consultation.answer,
        "answered_at": consultation.answered_at,
        "answered_on_time": (
            consultation.answered_at is not None
            and to_cst(consultation.answered_at).date() <= consultation.due_date
        )
        if answered
        else None,
    }
