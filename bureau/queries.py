"""Reads shared by the protocol, the console and the staff API."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bureau.errors import UnknownCase
from bureau.models import BureauCase, Consultation, OutboxEvent, ReceivedEvent


def find_case(
    session: Session, case_no: str | None, *, for_update: bool = False, full: bool = False
) -> BureauCase | None:
    """The case, locked for the transaction when it will change (PostgreSQL row lock)."""
    if not case_no:
        return None
    query = select(BureauCase).where(BureauCase.case_no == case_no)
    if full:
        query = query.options(
            selectinload(BureauCase.events),
            selectinload(BureauCase.appointments),
            selectinload(BureauCase.licence),
        )
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def get_case(
    session: Session, case_no: str, *, for_update: bool = False, full: bool = False
) -> BureauCase:
    case = find_case(session, case_no, for_update=for_update, full=full)
    if case is None:
        raise UnknownCase(case_no)
    return case


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(BureauCase.status, func.count()).group_by(BureauCase.status))
    return {status: count for status, count in rows}


def list_cases(
    session: Session, *, status: str | None, limit: int, offset: int = 0, oldest_first: bool
) -> list[BureauCase]:
    query = select(BureauCase)
    if status:
        query = query.where(BureauCase.status == status)
    order = BureauCase.id.asc() if oldest_first else BureauCase.updated_at.desc()
    return list(session.scalars(query.order_by(order).limit(limit).offset(offset)))


def count_cases(session: Session, *, status: str | None) -> int:
    query = select(func.count()).select_from(BureauCase)
    if status:
        query = query.where(BureauCase.status == status)
    return session.scalar(query) or 0


def list_consultations(session: Session, *, unanswered_only: bool = False) -> list[Consultation]:
    query = select(Consultation).order_by(Consultation.id.desc())
    if unanswered_only:
        query = query.where(Consultation.answer.is_(None))
    return list(session.scalars(query))


def list_outbox(
    session: Session, *, statuses: tuple[str, ...], limit: int = 500
) -> list[OutboxEvent]:
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.status.in_(statuses))
        .order_by(OutboxEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def outbox_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status))
    return {status: count for status, count in rows}


def outbox_for_case(session: Session, case_no: str) -> dict[str, OutboxEvent]:
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.case_no == case_no))
    return {row.event_id: row for row in rows}


def list_received(
    session: Session, *, case_no: str | None = None, after: int = 0, limit: int = 10000
) -> list[ReceivedEvent]:
    query = select(ReceivedEvent).where(ReceivedEvent.id > after)
    if case_no:
        query = query.where(ReceivedEvent.case_no == case_no)
    return list(session.scalars(query.order_by(ReceivedEvent.id).limit(limit)))
