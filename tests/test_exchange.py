"""The portal's side of the exchange protocol: callbacks in, outbox out."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import httpx
from sqlalchemy import select

from portal.clock import CST, add_working_days
from portal.composition import build_dispatcher
from portal.exchange import signing
from portal.exchange.dispatcher import backoff, parse_retry_after
from portal.exchange.models import OutboxMessage
from tests.conftest import PDF_BYTES, pick_item
from tests.factories import (
    FakeBureau,
    drain,
    envelope,
    fill_everything,
    make_case,
    new_case,
    send,
    status,
)


def test_signature_worked_example():
    # The example in docs/bureau-protocol.md: an integrator can check their HMAC against it.
    body = b'{"event_id":"00000000-0000-4000-8000-000000000000","type":"case.withdrawn","occurred_at":"2026-11-22T10:00:00+08:00","case_no":"WJ20261122000017","data":{"reason":"test"}}'
    assert (
        hashlib.sha256(body).hexdigest()
        == "3f4335a29f7aa8009dbe43cf9b1b12a70ecbd2824e853b7494d4e04fe053390b"
    )
    assert (
        signing.signature("dev-secret", body, 1795312800)
        == "2c692c3707ac3802db1ebe6efde9056c7150616dc26d86db6ab4ebfb049899d5"
    )
    # A GET: the digest of zero bytes.
    assert (
        signing.signature("dev-secret", b"", 1795312800)
        == "505ddc0dd6fe15b3f67e60825435ad8e7ddb9e34386fe334be36b41b14148735"
    )
    header = signing.sign("dev-secret", body, now=1795312800)
    assert signing.verify("dev-secret", header, body, now=1795312800 + 299)
    assert not signing.verify("dev-secret", header, body, now=1795312800 + 301)
    assert not signing.verify("dev-secret", header, body + b" ", now=1795312800)
    assert not signing.verify("other", header, body, now=1795312800)
    assert signing.verify("dev-secret", header + ",v1=" + "0" * 64, body, now=1795312800)
    for bad in [
        "",
        "t=abc,v1=00",
        "v1=" + "0" * 64,
        "t=1795312800",
        "garbage",
        "t=1795312800;v1=x",
    ]:
        assert not signing.verify("dev-secret", bad, body, now=1795312800)


def test_callback_signature_rules(client, auth, submitted):
    body = envelope(submitted["case_no"], "prereview.passed", {"comment": "材料齐全"})
    assert send(client, body, secret=None).status_code == 401
    assert send(client, body, header="t=1,v1=abc").status_code == 401
    assert send(client, body, secret="wrong-secret").status_code == 401
    assert send(client, body, t=time.time() - 400).status_code == 401
    assert send(client, body, t=time.time() + 400).status_code == 401
    assert status(client, auth, submitted["case_no"])["status"] == "prereview"
    # A NUL in an unsigned body is still a 401 first; signed, a 422 invalid_event.
    nul = envelope(submitted["case_no"], "prereview.passed", {"comment": "材料\x00齐全"})
    assert send(client, nul, secret=None).status_code == 401
    refused = send(client, nul)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_event"
    response = send(client, body)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert status(client, auth, submitted["case_no"])["status"] == "prereview_passed"


def test_duplicate_unknown_case_conflict_malformed(client, auth, submitted):
    case_no = submitted["case_no"]
    passed = envelope(case_no, "prereview.passed", {})
    assert send(client, passed).json() == {"status": "ok"}
    again = send(client, passed)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    timeline = status(client, auth, case_no)["timeline"]
    assert [e["type"] for e in timeline].count("prereview.passed") == 1

    unknown = send(client, envelope("WJ19990101000001", "prereview.passed", {}))
    assert unknown.status_code == 404

    # case.approved for a case never accepted: 409, nothing changes.
    licence = {
        "name": "许可证",
        "number": "X1",
        "valid_from": "2026-11-23",
        "filename": "x.pdf",
        "content_type": "application/pdf",
        "sha256": "a" * 64,
    }
    conflict = send(
        client, envelope(case_no, "case.approved", {"decision_no": "D1", "licence": licence})
    )
    assert conflict.status_code == 409
    after = status(client, auth, case_no)
    assert after["status"] == "prereview_passed" and after["licence"] is None

    assert send(client, b"{not json").status_code == 422
    assert send(client, {"event_id": "x", "type": "prereview.passed"}).status_code == 422
    assert send(client, envelope(case_no, "no.such.event", {})).status_code == 422
    assert (
        send(client, envelope(case_no, "case.accepted", {"due_date": "tomorrow"})).status_code
        == 422
    )


def test_returned_then_resubmitted_with_rounds(client, auth, submitted, db):
    case_no, item = submitted["case_no"], submitted["item"]
    code = item["materials"][0]["code"]
    body = envelope(
        case_no,
        "prereview.returned",
        {"comment": "请补正", "materials": [{"code": code, "comment": "请加盖公章"}]},
    )
    assert send(client, body).status_code == 200
    case = status(client, auth, case_no)
    assert case["status"] == "returned"
    assert case["materials"][0]["comment"] == "请加盖公章"
    # Editable again: re-upload next to the note, then resubmit — round 2.
    r = client.post(
        f"/api/v1/cases/{case_no}/materials/{code}/files",
        files={"file": ("new.pdf", PDF_BYTES + b"%v2", "application/pdf")},
        headers=auth,
    )
    assert r.status_code == 201
    assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
    with db.session() as session:
        payloads = [
            json.loads(m.payload)
            for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]
    rounds = [p["data"]["round"] for p in payloads if p["type"] == "case.submitted"]
    assert rounds == [1, 2]


def test_accepted_without_due_date_counts_working_days(client, auth):
    item = pick_item(client, prereview=False)
    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth).status_code == 202
    )
    # Accepted on Wednesday 30 September 2026, before the National Day holiday (Oct 1-7).
    body = envelope(
        case["case_no"],
        "case.accepted",
        {"acceptance_no": "SL001"},
        occurred_at="2026-09-30T09:00:00+08:00",
    )
    assert send(client, body).status_code == 200
    after = status(client, auth, case["case_no"])
    assert after["status"] == "accepted" and after["acceptance_no"] == "SL001"
    from datetime import date

    expected = add_working_days(date(2026, 9, 30), item["promised_days"])
    assert after["due_date"] == expected.isoformat()
    if item["promised_days"] >= 1:
        assert (
            expected >= date(2026, 10, 8) or item["promised_days"] == 0
        )  # the holiday week does not count


def test_withdraw_after_acceptance_is_409(client, auth):
    case = make_case(client, auth, "accepted", prereview=False)
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/withdrawal", headers=auth).status_code == 409
    )


def test_backoff_and_retry_after():
    from portal.settings import Settings

    s = Settings(retry_first_seconds=1, retry_max_seconds=300)
    for attempt in range(1, 15):
        delay = backoff(s, attempt, None)
        base = min(300, 2 ** (attempt - 1))
        assert base / 2 <= delay <= base
    assert backoff(s, 1, 120) >= 120
    assert parse_retry_after("30") == 30
    assert (
        parse_retry_after("Wed, 21 Oct 2099 07:28:00 GMT") == 24 * 3600
    )  # capped: the retry window
    assert parse_retry_after("soon") is None


def test_dispatcher_puts_blobs_first_and_keeps_case_order(client, auth, submitted, settings, db):
    case_no = submitted["case_no"]
    assert (
        client.post(
            f"/api/v1/cases/{case_no}/withdrawal", json={"reason": "不办了"}, headers=auth
        ).status_code
        == 200
    )
    fake = FakeBureau()
    drain(settings.model_copy(update={"retry_first_seconds": 0.01}), db, fake)
    assert [e["type"] for e in fake.events] == ["case.submitted", "case.withdrawn"]
    assert fake.blobs and all(b.startswith(b"%PDF") for b in fake.blobs.values())
    with db.session() as session:
        assert {m.status for m in session.scalars(select(OutboxMessage))} == {"delivered"}


def test_dispatcher_retries_5xx_and_parks_4xx(client, auth, submitted, settings, db):
    fake = FakeBureau(answers=[503, 503])
    fast = settings.model_copy(update={"retry_first_seconds": 0.001, "retry_max_seconds": 0.002})
    drain(fast, db, fake, rounds=50)
    assert [e["type"] for e in fake.events] == ["case.submitted"]
    with db.session() as session:
        message = session.scalars(select(OutboxMessage)).one()
        assert message.status == "delivered" and message.attempts == 3

    # A permanent 4xx parks the event at once, and the operator can requeue it.
    client.post(
        f"/api/v1/cases/{submitted['case_no']}/withdrawal", json={"reason": "x"}, headers=auth
    )
    drain(fast, db, FakeBureau(answers=[400]), rounds=5)
    with db.session() as session:
        dead = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead")).one()
    from portal.exchange.admin import list_messages, requeue

    assert [row["id"] for row in list_messages(db, dead=True)] == [dead.id]
    assert requeue(db, [dead.id, 99999]) == ([dead.id], [99999])
    final = FakeBureau()
    drain(fast, db, final)
    assert [e["type"] for e in final.events] == ["case.withdrawn"]


def test_accepted_date_is_cst(client, auth):
    # 23:30 UTC on 30 Sep is already 1 Oct in China: the day of acceptance is a holiday.
    item = pick_item(client, prereview=False)
    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth)
    send(
        client,
        envelope(
            case["case_no"],
            "case.accepted",
            {"acceptance_no": "SL3"},
            occurred_at="2026-09-30T23:30:00Z",
        ),
    )
    from datetime import date, datetime

    accepted_day = datetime.fromisoformat("2026-09-30T23:30:00+00:00").astimezone(CST).date()
    assert accepted_day == date(2026, 10, 1)
    assert (
        status(client, auth, case["case_no"])["due_date"]
        == add_working_days(accepted_day, item["promised_days"]).isoformat()
    )


def test_deliveries_finishing_together_are_recorded_together(client, settings, db):
    """Group commit: 30 events to 30 cases, answered together, need far fewer than 30
    write transactions, and every one of them ends delivered exactly once."""
    from portal.exchange import outbox

    with db.session(write=True) as session, session.begin():
        for n in range(30):
            outbox.enqueue_event(
                session,
                type="case.withdrawn",
                case_no=f"WJ20261201{n:06d}",
                data={"reason": "测试"},
            )
    released = asyncio.Event()
    arrived = 0

    async def slow_bureau(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived >= 16:  # everything in flight at once, then all answered together
            released.set()
        await released.wait()
        return httpx.Response(200, json={"status": "ok"})

    dispatcher = build_dispatcher(settings, db)
    groups: list[int] = []
    record = dispatcher._delivered

    def counted(messages):
        groups.append(len(messages))
        record(messages)

    dispatcher._delivered = counted

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(slow_bureau)) as http:
            dispatcher.client = http
            while await dispatcher.run_once():
                pass

    asyncio.run(go())
    assert sum(groups) == 30 and len(groups) < 30, groups
    with db.session() as session:
        rows = session.scalars(select(OutboxMessage)).all()
    assert {(m.status, m.attempts) for m in rows} == {("delivered", 1)}


class RefusingBureau(FakeBureau):
    """Answers 400 to the first event of one case, 200 to everything else."""

    def __init__(self, refuse_case: str):
        super().__init__()
        self.refuse_case = refuse_case
        self.refused: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not self.refused:
            event = json.loads(request.read())
            if event["case_no"] == self.refuse_case:
                self.refused.append(event["type"])
                return httpx.Response(400, json={"error": "invalid_event", "message": "x"})
        return super().__call__(request)


def test_a_parked_event_holds_back_its_case_only(client, auth, submitted, settings, db, tmp_path):
    """Contract, "Ordering, made exact": a later event of a case waits behind a parked one."""
    import os
    import subprocess
    import sys

    held = submitted["case_no"]
    client.post(f"/api/v1/cases/{held}/withdrawal", json={"reason": "不办了"}, headers=auth)
    other = new_case(client, auth, submitted["item"])
    fill_everything(client, auth, submitted["item"], other["case_no"])
    assert (
        client.post(f"/api/v1/cases/{other['case_no']}/prereview", headers=auth).status_code == 202
    )

    fast = settings.model_copy(update={"retry_first_seconds": 0.001, "retry_max_seconds": 0.002})
    bureau = RefusingBureau(held)
    drain(fast, db, bureau, rounds=10)
    assert bureau.refused == ["case.submitted"]
    # The other case went through; the held case's withdrawal was never sent.
    assert [(e["case_no"], e["type"]) for e in bureau.events] == [
        (other["case_no"], "case.submitted")
    ]
    with db.session() as session:
        rows = {
            (m.case_no, m.event_type): m
            for m in session.scalars(select(OutboxMessage).where(OutboxMessage.case_no == held))
        }
    parked = rows[(held, "case.submitted")]
    assert parked.status == "dead" and rows[(held, "case.withdrawn")].status == "pending"
    assert rows[(held, "case.withdrawn")].attempts == 0

    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_DATA_DIR": str(tmp_path / "cli"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "portal.cli", "outbox", "requeue", str(parked.id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    after = FakeBureau()
    drain(fast, db, after)
    assert [(e["case_no"], e["type"]) for e in after.events] == [
        (held, "case.submitted"),
        (held, "case.withdrawn"),
    ]
    # The operator's view keeps every try: parked with the bureau's 400, then delivered.
    shown = subprocess.run(
        [sys.executable, "-m", "portal.cli", "outbox", "show", str(parked.id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    tries = [line.split() for line in shown.stdout.splitlines() if line.startswith("  20")]
    assert [t[2] for t in tries] == ["dead", "delivered"]
    assert tries[0][3:5] == ["HTTP", "400"] and "invalid_event" in shown.stdout
    assert "状态 delivered  已尝试 2 次" in shown.stdout
