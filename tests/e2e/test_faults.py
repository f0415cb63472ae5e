"""Faults through real sockets: the back office down, overloaded, the portal killed, bad callbacks."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import httpx
import pytest

from portal.exchange import signing
from tests.e2e.harness import SECRET, wait_for
from tests.e2e.proxy import FaultProxy
from tests.live import ThreadServer, file_a_case, outbox_counts, outbox_settled, wait_until

pytestmark = pytest.mark.e2e


def file_many(portal, n: int) -> list[str]:
    portal.register()
    numbers = []
    for _ in range(n):
        case_no, _ = file_a_case(portal, prereview=True)
        assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
        numbers.append(case_no)
    return numbers


# More events than the dispatcher sends at once (CONCURRENCY 16), so the recovery is
# seen across several rounds of sends, not one.
QUEUED = 20


def test_bureau_refusing_then_503_then_recovering(system):
    # The portal starts while nothing listens on the back office's port: connections are refused.
    portal = system.start_portal()
    numbers = file_many(portal, QUEUED)
    wait_until(
        lambda: outbox_counts(system.database_url)["attempts"] >= 3,
        seconds=20,
        message="several refused attempts",
    )

    # The real back office comes up on another port; a proxy on the portal's configured
    # back-office port answers 503 with Retry-After first, then forwards.
    from tests.live import free_port

    real_port = free_port()
    real_system_port = system.bureau_port
    system.bureau_port = real_port
    system.bureau_url = f"http://127.0.0.1:{real_port}"
    bureau = system.start_bureau()
    proxy = FaultProxy(bureau.server.url)
    with ThreadServer(proxy.app, port=real_system_port):
        wait_for(lambda: proxy.requests >= 5, what="the portal to hit the 503s")
        assert sum(proxy.delivered.values()) == 0
        proxy.mode = "forward"
        wait_for(lambda: len(proxy.delivered) >= QUEUED, seconds=90, what="every event delivered")
        # Before counting duplicates: the portal has recorded every event as delivered, so
        # none is still on its way to be sent again.
        wait_until(
            lambda: outbox_settled(system.database_url, QUEUED), message="the outbox to settle"
        )
    received = [e for e in bureau.received() if e["type"] == "case.submitted"]
    assert sorted(e["case_no"] for e in received) == sorted(numbers)
    assert all(count == 1 for count in proxy.delivered.values()), "an event was delivered twice"
    assert len({e["event_id"] for e in received}) == QUEUED


def test_portal_killed_while_events_queued(system):
    portal = system.start_portal()
    numbers = file_many(portal, 10)
    system.portal_server.kill()  # SIGKILL: no shutdown hooks, leases left behind
    bureau = system.start_bureau()
    portal = system.start_portal()
    wait_for(
        lambda: len({e["case_no"] for e in bureau.received()}) == 10,
        seconds=90,
        what="all queued events after restart",
    )
    assert sorted(e["case_no"] for e in bureau.received()) == sorted(numbers)


def _post(portal_url: str, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Bureau-Signature"] = header
    return httpx.post(
        portal_url + "/api/bureau/v1/events", content=body, headers=headers, timeout=30
    )


def test_bad_callbacks_leave_the_case_unchanged(running):
    portal, bureau = running
    numbers = file_many(portal, 1)
    case_no = numbers[0]
    wait_for(lambda: bureau.case(case_no)["status"] == "prereview", what="case at the bureau")
    url = portal.server.url

    def event(type_, data, event_id=None):
        return json.dumps(
            {
                "event_id": event_id or str(uuid.uuid4()),
                "type": type_,
                "occurred_at": "2026-11-23T10:00:00+08:00",
                "case_no": case_no,
                "data": data,
            }
        ).encode()

    before = portal.case(case_no)
    body = event("prereview.passed", {})
    assert _post(url, body, signing.sign("wrong-secret", body)).status_code == 401
    assert _post(url, body, signing.sign(SECRET, body, now=time.time() - 600)).status_code == 401
    assert _post(url, body, None).status_code == 401
    other = event("prereview.passed", {}).replace(case_no.encode(), b"WJ20000101000009")
    assert _post(url, other, signing.sign(SECRET, other)).status_code == 404
    out_of_order = event(
        "case.approved",
        {
            "decision_no": "X",
            "licence": {
                "name": "证",
                "number": "1",
                "valid_from": "2026-11-23",
                "filename": "a.pdf",
                "content_type": "application/pdf",
                "sha256": "b" * 64,
            },
        },
    )
    assert _post(url, out_of_order, signing.sign(SECRET, out_of_order)).status_code == 409
    after = portal.case(case_no)
    assert after["status"] == before["status"] == "prereview"
    assert after["timeline"] == before["timeline"]

    # A replayed event id: processed once, the replay answers duplicate and changes nothing.
    first = event("prereview.returned", {"comment": "一", "materials": []}, event_id="replay-1")
    assert _post(url, first, signing.sign(SECRET, first)).json() == {"status": "ok"}
    replay = _post(url, first, signing.sign(SECRET, first))
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
    assert [e["type"] for e in portal.case(case_no)["timeline"]].count("prereview.returned") == 1


@pytest.mark.postgres
def test_two_workers_on_postgres_send_nothing_twice(system, database_url):
    portal = system.start_portal(PORTAL_DISPATCHER="off")
    numbers = file_many(portal, 200)
    from tests.e2e.harness import portal_env
    from tests.live import BIN, free_port

    real_port = free_port()
    proxy_port = system.bureau_port
    system.bureau_port = real_port
    system.bureau_url = f"http://127.0.0.1:{real_port}"
    bureau = system.start_bureau()
    proxy = FaultProxy(bureau.server.url)
    proxy.mode = "forward"
    with ThreadServer(proxy.app, port=proxy_port):
        workers = []
        for n in range(2):
            # A generous timeout: a resend after a slow answer is legitimate at-least-once
            # behaviour; this test is about two workers never racing for the same event.
            env = portal_env(
                system.tmp, database_url, f"http://127.0.0.1:{proxy_port}", system.portal_url
            )
            env["PORTAL_HTTP_TIMEOUT_SECONDS"] = "60"
            # Workers have no HTTP port; ProcessServer waits on /healthz, so start them plainly.
            log = open(system.tmp / f"worker{n}.log", "ab")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [str(BIN / "portal"), "worker"],
                    env={**os.environ, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            wait_for(
                lambda: len(proxy.delivered) >= 200,
                seconds=180,
                what="200 events through two workers",
            )
            wait_until(lambda: outbox_settled(database_url, 200), message="the outbox to settle")
        finally:
            for w in workers:
                w.terminate()
                w.wait(15)
    assert len(proxy.delivered) == 200
    assert max(proxy.delivered.values()) == 1
    assert max(proxy.attempts.values()) == 1, "an event was sent twice"
    assert sorted({e["case_no"] for e in bureau.received()}) == sorted(numbers)
