"""The outbox under a slow or odd back office: no send holds up another; Retry-After bounded.

Oracle: the contract (bureau-protocol.md, "Delivery" and "Ordering"): cases are
independent, events of one case arrive in order, retryable answers are retried for
at least 24 hours before an event is parked.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
from sqlalchemy import select

from portal.composition import build_dispatcher
from portal.exchange.dispatcher import MAX_RETRY_AFTER_SECONDS, Dispatcher, parse_retry_after
from portal.exchange.models import OutboxMessage
from portal.exchange.outbox import enqueue_event
from portal.notifications.sms import queue_sms


def queue(db, case_no: str, *types: str) -> None:
    with db.session(write=True) as session, session.begin():
        for type_ in types:
            enqueue_event(session, type=type_, case_no=case_no, data={"reason": type_})


def rows(db) -> list[OutboxMessage]:
    with db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def run_until(dispatcher: Dispatcher, done, limit: float) -> float:
    """Run the real dispatcher loop until done() or the limit; seconds it took."""
    task = asyncio.create_task(dispatcher.run())
    start = time.monotonic()
    try:
        while time.monotonic() - start < limit:
            if await asyncio.to_thread(done):
                break
            await asyncio.sleep(0.05)
        return time.monotonic() - start
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, timeout=10)


def test_a_trickling_answer_holds_up_neither_other_cases_nor_sms(settings, db, tmp_path):
    slow_case, fast_case = "WJ20261202000001", "WJ20261202000002"
    queue(db, slow_case, "case.withdrawn", "delivery.selected")
    queue(db, fast_case, "case.withdrawn", "delivery.selected")
    with db.session(write=True) as session, session.begin():
        queue_sms(session, account_id=1, phone="13800138000", event="test", text="测试短信")
    received: list[tuple[str, str]] = []
    trickled = []

    async def trickle():
        while True:  # one byte every 0.2 s, for ever: a per-read timeout never trips
            trickled.append(1)
            yield b" "
            await asyncio.sleep(0.2)

    async def bureau(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/events"):
            event = json.loads(request.content)
            if event["case_no"] == slow_case:
                return httpx.Response(200, content=trickle())
            received.append((event["case_no"], event["type"]))
        else:
            received.append(("sms", json.loads(request.content)["text"]))
        return httpx.Response(200, json={"status": "ok"})

    fast = settings.model_copy(
        update={
            "http_timeout_seconds": 0.5,  # deadline: 1 s per send
            "retry_first_seconds": 30,
            "sms_gateway_url": "http://sms.test/send",
        }
    )
    dispatcher = build_dispatcher(fast, db, transport=httpx.MockTransport(bureau))

    def fast_case_through() -> bool:
        return len([r for r in received if r[0] in (fast_case, "sms")]) == 3

    took = asyncio.run(run_until(dispatcher, fast_case_through, limit=10))
    assert fast_case_through(), received
    assert took < 3, f"the other case waited {took:.1f} s behind the slow one"
    assert [t for c, t in received if c == fast_case] == ["case.withdrawn", "delivery.selected"]

    # The slow case: its first event was cut at the deadline and will be retried; its
    # second event was never sent ahead of it.
    asyncio.run(
        run_until(
            dispatcher, lambda: any(r.attempts for r in rows(db) if r.case_no == slow_case), limit=5
        )
    )
    slow = [r for r in rows(db) if r.case_no == slow_case]
    assert slow[0].status == "pending" and slow[0].attempts >= 1
    assert "deadline" in (slow[0].last_error or "")
    assert slow[1].status == "pending" and slow[1].attempts == 0
    assert trickled, "the slow answer never started"


def test_absurd_and_long_retry_after_are_retried_within_the_window(settings, db):
    assert parse_retry_after("9" * 400) == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("0" * 300 + "30") == 30
    assert parse_retry_after("٣٠") is None  # not ASCII digits: ignored, backoff applies
    assert parse_retry_after("Wed, 21 Oct 9999 07:28:00 GMT") == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("x" * 5000) is None

    answers = iter(["9" * 400, "172800"])

    def bureau(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": next(answers)})

    queue(db, "WJ20261202000003", "case.withdrawn")
    queue(db, "WJ20261202000004", "case.withdrawn")
    dispatcher = build_dispatcher(settings, db, transport=httpx.MockTransport(bureau))

    async def one_pass():
        async with httpx.AsyncClient(transport=httpx.MockTransport(bureau)) as client:
            dispatcher.client = client
            return await dispatcher.run_once()

    assert asyncio.run(one_pass()) == 2  # no crash on either answer
    for row in rows(db):
        give_up = row.created_at + timedelta(hours=settings.retry_give_up_hours)
        # Not parked: one more try is due before the 24-hour window closes.
        assert row.status == "pending" and row.attempts == 1
        assert row.next_attempt_at <= give_up + timedelta(seconds=1)
        assert row.next_attempt_at > row.created_at + timedelta(hours=23)


def test_a_blob_the_bureau_lost_is_put_again_before_the_retry(client, auth, settings, db):
    from tests.factories import FakeBureau, drain

    item = next(
        client.get(f"/api/v1/items/{s['code']}").json()
        for s in client.get("/api/v1/items").json()["items"]
        if s["prereview"]
    )
    from tests.factories import fill_everything, new_case

    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth).status_code == 202
    )

    class Forgetful(FakeBureau):
        """Answers the first event 503 and loses every blob it held (a restore from backup)."""

        lost = False

        def __call__(self, request):
            if request.method == "POST" and not self.lost:
                self.lost = True
                self.blobs.clear()
                self.requests.append(request)
                return httpx.Response(503, headers={"Retry-After": "0"})
            return super().__call__(request)

    bureau = Forgetful()
    fast = settings.model_copy(update={"retry_first_seconds": 0.001, "retry_max_seconds": 0.002})
    drain(fast, db, bureau, rounds=20)
    # FakeBureau asserts every file of an event was PUT before it: the retry re-PUT them.
    assert [e["type"] for e in bureau.events] == ["case.submitted"]
    puts = [r for r in bureau.requests if r.method == "PUT"]
    assert len(puts) == 2 * len({r.url.path for r in puts})
