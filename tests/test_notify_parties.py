"""Who hears about a case: the filer, the enterprise an agent filed for, never a closed
account; and the applicant hears when the bureau signs for posted originals."""

from __future__ import annotations

import json

from sqlalchemy import select

from portal.accounts.models import Account
from portal.cases.models import Case
from portal.clock import utcnow
from portal.exchange.models import OutboxMessage
from portal.notifications.models import Message
from tests.conftest import bearer, make_uscc, register
from tests.factories import accept, bureau, submitted_case


def titles(client, auth) -> list[str]:
    answer = client.get("/api/v1/messages", headers=auth)
    assert answer.status_code == 200
    return [m["title"] for m in answer.json()["messages"]]


def texts_to(db, phone: str) -> list[str]:
    with db.session() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sms"))
        jobs = [json.loads(r.payload) for r in rows]
    return [j["text"] for j in jobs if j["to"] == phone]


def file_for(db, case_no: str, enterprise_phone: str) -> None:
    """The case as an agent files it in an enterprise's name (the authorisation itself
    is tested end to end in tests/test_authorisations.py)."""
    with db.session(write=True) as session, session.begin():
        company = session.scalars(select(Account).where(Account.phone == enterprise_phone)).one()
        case = session.scalars(select(Case).where(Case.case_no == case_no)).one()
        case.on_behalf_of_id = company.id


def test_the_enterprise_hears_about_a_case_its_agent_filed(client, auth, person, db):
    company = register(
        client, kind="enterprise", name="常州惠民餐饮有限公司", id_number=make_uscc()
    )
    company_auth = bearer(client, company)
    _, case_no = submitted_case(client, auth)
    file_for(db, case_no, company["phone"])

    accept(client, case_no)

    assert "申请已受理" in titles(client, auth)  # the agent who filed
    assert "申请已受理" in titles(client, company_auth)  # the enterprise that applies
    assert any(case_no in t and "已受理" in t for t in texts_to(db, company["phone"]))
    assert any(case_no in t and "已受理" in t for t in texts_to(db, person["phone"]))
    # The message's link opens the case for the enterprise.
    (message,) = [
        m
        for m in client.get("/api/v1/messages", headers=company_auth).json()["messages"]
        if m["title"] == "申请已受理"
    ]
    assert client.get(f"/api/v1/cases/{case_no}", headers=company_auth).status_code == 200
    assert case_no in message["link"]


def test_a_closed_account_is_neither_messaged_nor_texted(client, auth, person, db):
    company = register(client, kind="enterprise", name="常州已注销有限公司", id_number=make_uscc())
    _, case_no = submitted_case(client, auth)
    file_for(db, case_no, company["phone"])
    # Closed (注销) meanwhile; its case stays with the bureau.
    with db.session(write=True) as session, session.begin():
        row = session.scalars(select(Account).where(Account.phone == company["phone"])).one()
        row.closed_at = utcnow()
        company_id = row.id

    accept(client, case_no)

    with db.session() as session:
        assert session.scalars(select(Message).where(Message.account_id == company_id)).all() == []
    assert texts_to(db, company["phone"]) == []
    assert "申请已受理" in titles(client, auth)  # the agent who filed still hears


def test_the_applicant_hears_when_the_bureau_signs_for_the_originals(client, auth, db):
    _, case_no = submitted_case(client, auth)
    accept(client, case_no)
    bureau(client, case_no, "originals.received", {"note": "原件已核验"})
    assert "审批局已签收原件" in titles(client, auth)
