"""The callback outbox: prompt delivery, retries with backoff and Retry-After, parking, FIFO."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from bureau.outbox import retry_after_seconds
from tests.bureau.bureau_testkit import Bureau


def _outbox(bureau: Bureau, status: str = "all") -> list[dict]:
    response = bureau.api("GET", "/outbox", params={"status": status})
    assert response.status_code == 200
    return response.json()["events"]


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_new_event_goes_out_within_a_second(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    # From the moment the action is recorded (its answer): the clock measures the
    # sending, not the action's own request, which took 1.1 s once on a loaded CI.
    bureau.act(case_no, "pass")
    started = time.monotonic()
    bureau.portal.wait_for(1, timeout=1.0)
    assert time.monotonic() - started < 1.0
    # The stub has the event; the bureau records the answer a moment later.
    _wait(lambda: _outbox(bureau)[0]["status"] == "delivered")
    [message] = _outbox(bureau)
    assert message["status"] == "delivered"
    assert message["attempts"] == 1
    assert message["last_status"] == 200


def test_503_with_retry_after_is_retried_then_delivered_once(bureau: Bureau) -> None:
    bureau.portal.script.append(httpx.Response(503, headers={"Retry-After": "1"}, text="维护中"))
    case_no = bureau.new_case()
    bureau.act(case_no, "pass")
    _wait(lambda: _outbox(bureau, "pending") and _outbox(bureau, "pending")[0]["attempts"] == 1)
    [pending] = _outbox(bureau, "pending")
    assert pending["last_status"] == 503
    assert pending["last_error"] == "维护中"
    assert pending["next_attempt_at"] is not None

    [delivered] = bureau.portal.wait_for(1, timeout=3.0)
    assert delivered["type"] == "prereview.passed"
    (first, _), (second, _) = bureau.portal.attempts
    # Retry-After (1 s) wins over the 0.05 s backoff of these settings.
    assert second - first >= 0.9
    _wait(lambda: _outbox(bureau)[0]["status"] == "delivered")
    [message] = _outbox(bureau)
    assert (message["status"], message["attempts"]) == ("delivered", 2)
    # Recorded as delivered after two tries, so no third one is on its way: exactly once.
    assert len(bureau.portal.attempts) == 2
    assert len(bureau.portal.received) == 1


def test_connection_errors_and_timeouts_are_retried(bureau: Bureau) -> None:
    bureau.portal.script += [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(429),
        httpx.Response(408),
    ]
    case_no = bureau.new_case()
    bureau.act(case_no, "pass")
    bureau.portal.wait_for(1, timeout=5.0)
    _wait(lambda: _outbox(bureau)[0]["status"] == "delivered")
    [message] = _outbox(bureau)
    assert (message["status"], message["attempts"]) == ("delivered", 5)


def test_other_4xx_parks_at_once_and_holds_the_case_until_requeued(bureau: Bureau) -> None:
    bureau.portal.script.append(httpx.Response(409, json={"error": {"code": "conflict"}}))
    case_no = bureau.new_case()
    bureau.act(case_no, "pass")
    _wait(lambda: bool(_outbox(bureau, "dead")))
    [dead] = _outbox(bureau, "dead")
    assert dead["attempts"] == 1
    assert dead["last_status"] == 409

    # A later event of the same case waits behind the parked one; other cases go on.
    bureau.post_event("case.submitted", case_no, bureau.submitted_data(stage="formal"))
    bureau.act(case_no, "accept")
    other = bureau.new_case()
    bureau.act(other, "pass")
    bureau.portal.wait_for(1, case_no=other)
    # The dispatcher has finished a round that sent an event queued after the blocked
    # one (the other case's, recorded as delivered): had the blocked one been free to
    # go, it would have gone by now.
    _wait(
        lambda: any(m["case_no"] == other and m["status"] == "delivered" for m in _outbox(bureau))
    )
    assert bureau.portal.events(case_no) == []
    [blocked] = _outbox(bureau, "pending")
    assert (blocked["type"], blocked["attempts"]) == ("case.accepted", 0)

    assert bureau.api("POST", f"/outbox/{blocked['id']}/requeue").status_code == 409
    requeued = bureau.api("POST", f"/outbox/{dead['id']}/requeue")
    assert requeued.status_code == 200
    events = bureau.portal.wait_for(2, case_no=case_no)
    assert [e["type"] for e in events] == ["prereview.passed", "case.accepted"]


def test_gives_up_after_the_give_up_time(make_bureau: Callable[..., Bureau]) -> None:
    bureau = make_bureau(retry_give_up_hours=0.5 / 3600)  # half a second
    bureau.portal.script += [httpx.Response(500)] * 100
    case_no = bureau.new_case()
    bureau.act(case_no, "pass")
    _wait(lambda: bool(_outbox(bureau, "dead")), timeout=5.0)
    [dead] = _outbox(bureau, "dead")
    assert dead["attempts"] >= 2
    assert dead["last_status"] == 500


def test_fifo_per_case_with_a_slow_portal(bureau: Bureau) -> None:
    bureau.portal.delay = 0.05
    first, second = bureau.accepted_case(), bureau.accepted_case()
    for n in range(5):
        for case_no in (first, second):
            day = f"2099-01-{n + 10:02d}"
            bureau.act(case_no, "inspection", {"date": day})
    for case_no in (first, second):
        events = bureau.portal.wait_for(6, case_no=case_no)
        assert [e["data"].get("date") for e in events[1:]] == [
            f"2099-01-{n + 10:02d}" for n in range(5)
        ]
    # The two cases were sent side by side, not one after the other.
    assert len(bureau.portal.received) == 12


def test_dispatcher_off_leaves_events_pending(make_bureau: Callable[..., Bureau]) -> None:
    bureau = make_bureau(dispatcher=False)
    case_no = bureau.new_case()
    bureau.act(case_no, "pass")
    # With the dispatcher off nothing runs that could leave a sign of having looked at
    # the outbox, so this one negative check waits a fixed while: twelve times the
    # 0.05 s backoff of these settings, in which a running dispatcher delivers.
    time.sleep(0.6)
    assert bureau.portal.received == []
    assert [m["status"] for m in _outbox(bureau)] == ["pending"]


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now=now) == 120
    assert retry_after_seconds("Sun, 22 Nov 2026 02:00:30 GMT", now=now) == 30
    assert retry_after_seconds("Sun, 22 Nov 2026 01:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None, now=now) is None
