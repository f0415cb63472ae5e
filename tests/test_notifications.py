"""Notifications: the message centre, one text per event, and SMS through the outbox —
the log gateway by default, and an HTTP gateway on a real loopback server that fails
for a while, where every message still arrives once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from portal.composition import build_dispatcher
from portal.exchange.models import OutboxMessage
from portal.notifications.hooks import NOTIFIED, REMINDER
from portal.resources import TEMPLATES_DIR
from tests.conftest import bearer, csrf_of, register, web_login
from tests.factories import (
    GOOD_ADDRESS,
    FakeBureau,
    accept,
    approve,
    bureau,
    drain,
    envelope,
    send,
    submitted_case,
)
from tests.live import free_port


def sms_jobs(db):
    with db.session() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "sms").order_by(OutboxMessage.id)
        )
        return [(r, json.loads(r.payload)) for r in rows]


def messages(client, auth):
    response = client.get("/api/v1/messages", headers=auth)
    assert response.status_code == 200
    return response.json()


def test_every_notified_event_has_its_own_text_template():
    folder = TEMPLATES_DIR / "notifications"
    for event in sorted(NOTIFIED | {REMINDER}):
        text = (folder / f"{event}.txt").read_text()
        for block in ("title", "body", "sms"):
            assert "{% block " + block + " %}" in text, (event, block)


def test_each_status_change_reaches_the_message_centre_and_sms(client, auth, person, db):
    # Pre-review: returned, then passed.
    from tests.conftest import pick_item
    from tests.factories import fill_everything, new_case

    item = pick_item(client, prereview=True)
    first = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, first)
    assert client.post(f"/api/v1/cases/{first}/prereview", headers=auth).status_code == 202
    code = item["materials"][0]["code"]
    bureau(
        client,
        first,
        "prereview.returned",
        {"comment": "请补正", "materials": [{"code": code, "comment": "请加盖公章"}]},
    )
    assert client.post(f"/api/v1/cases/{first}/prereview", headers=auth).status_code == 202
    bureau(client, first, "prereview.passed", {"comment": "材料齐全"})
    # A formal case: accepted, inspection, approved, ready for pickup, rated, replied.
    express_item, second = submitted_case(client, auth)
    hall = express_item["halls"][0]
    client.put(
        f"/api/v1/cases/{second}/delivery",
        json={"method": "pickup", "hall": hall["code"]},
        headers=auth,
    )
    accept(client, second)
    bureau(client, second, "inspection.scheduled", {"date": "2030-01-05", "note": "请准备原件"})
    bureau(
        client,
        second,
        "case.approved",
        {
            "decision_no": "决-2",
            "licence": {
                "name": "许可证",
                "number": "XK-002",
                "valid_from": "2026-11-27",
                "filename": "x.pdf",
                "content_type": "application/pdf",
                "sha256": "6" * 64,
            },
        },
    )
    bureau(
        client, second, "licence.ready_for_pickup", {"hall": hall["code"], "pickup_code": "482913"}
    )
    assert (
        client.post(
            f"/api/v1/cases/{second}/rating", json={"level": 2, "comment": "慢"}, headers=auth
        ).status_code
        == 201
    )
    bureau(client, second, "rating.reply", {"reply": "已改进"})
    # Shipped, rejected and denied on three more cases.
    _, third = submitted_case(client, auth)
    client.put(
        f"/api/v1/cases/{third}/delivery",
        json={"method": "express", "address": GOOD_ADDRESS},
        headers=auth,
    )
    approve(client, third)
    bureau(client, third, "licence.shipped", {"carrier": "EMS", "tracking_no": "EM987654321CN"})
    _, fourth = submitted_case(client, auth)
    bureau(client, fourth, "case.rejected", {"reason": "不属于本机关受理范围"})
    _, fifth = submitted_case(client, auth)
    accept(client, fifth)
    bureau(client, fifth, "case.denied", {"reason": "现场核查不符合条件", "remedy": "可申请复议"})

    listing = messages(client, auth)
    got = [(m["type"], m["link"]) for m in reversed(listing["messages"])]
    assert got == [
        ("prereview.returned", f"/cases/{first}"),
        ("prereview.passed", f"/cases/{first}"),
        ("case.accepted", f"/cases/{second}"),
        ("inspection.scheduled", f"/cases/{second}"),
        ("case.approved", f"/cases/{second}"),
        (REMINDER, f"/cases/{second}/rating"),
        ("licence.ready_for_pickup", f"/cases/{second}"),
        ("rating.reply", f"/cases/{second}"),
        ("case.accepted", f"/cases/{third}"),
        ("case.approved", f"/cases/{third}"),
        (REMINDER, f"/cases/{third}/rating"),
        ("licence.shipped", f"/cases/{third}"),
        ("case.rejected", f"/cases/{fourth}"),
        (REMINDER, f"/cases/{fourth}/rating"),
        ("case.accepted", f"/cases/{fifth}"),
        ("case.denied", f"/cases/{fifth}"),
        (REMINDER, f"/cases/{fifth}/rating"),
    ]
    assert listing["unread"] == len(got)
    by_type = {m["type"]: m for m in listing["messages"]}
    assert "请加盖公章" in by_type["prereview.returned"]["body"]
    assert "2030年1月10日" in by_type["case.accepted"]["body"]
    assert "2030年1月5日" in by_type["inspection.scheduled"]["body"]
    assert "482913" in by_type["licence.ready_for_pickup"]["body"]
    assert hall["name"] in by_type["licence.ready_for_pickup"]["body"]
    assert "EM987654321CN" in by_type["licence.shipped"]["body"]
    assert "已改进" in by_type["rating.reply"]["body"]
    assert "现场核查不符合条件" in by_type["case.denied"]["body"]

    jobs = sms_jobs(db)
    assert [job["type"] for _, job in jobs] == [t for t, _ in got]
    assert {job["to"] for _, job in jobs} == {person["phone"]}
    assert all(job["text"].startswith("【武进区行政审批局】") for _, job in jobs)
    assert all(row.ordering_key.startswith("sms:") for row, _ in jobs)
    # The citizen's own actions are not notified back.
    assert not any(job["type"] in ("delivery.selected", "rating.submitted") for _, job in jobs)


def test_one_reminder_and_none_after_withdrawal(client, auth, db):
    _, case_no = submitted_case(client, auth)
    approve(client, case_no)
    # A duplicate of the finishing event changes nothing and reminds nobody again.
    again = send(client, envelope(case_no, "case.accepted", {"acceptance_no": "x"}))
    assert again.status_code == 409
    reminders = [m for m in messages(client, auth)["messages"] if m["type"] == REMINDER]
    assert len(reminders) == 1
    _, withdrawn = submitted_case(client, auth)
    assert client.post(f"/api/v1/cases/{withdrawn}/withdrawal", headers=auth).status_code == 200
    assert not [m for m in messages(client, auth)["messages"] if withdrawn in m["link"]]


def test_message_centre_pages_unread_count_and_privacy(client, auth, person):
    _, case_no = submitted_case(client, auth)
    accept(client, case_no)
    bureau(client, case_no, "inspection.scheduled", {"date": "2030-01-05"})
    web_login(client, person)
    home = client.get("/cases")
    assert 'aria-label="2 条未读"' in home.text
    page = client.get("/messages")
    assert page.status_code == 200
    assert page.text.count("未读</span>") == 2 and "申请已受理" in page.text
    first = messages(client, auth)["messages"][-1]
    opened = client.get(f"/messages/{first['id']}")
    assert opened.status_code == 200
    assert "申请已受理" in opened.text and f'href="/cases/{case_no}"' in opened.text
    # Reading is a GET and changes nothing; marking read is a form (works with JS off).
    assert messages(client, auth)["unread"] == 2
    assert "标为已读" in opened.text
    forged = client.post(f"/messages/{first['id']}/read", data={"csrf_token": "forged"})
    assert forged.status_code == 403 and messages(client, auth)["unread"] == 2
    marked = client.post(
        f"/messages/{first['id']}/read",
        data={"csrf_token": csrf_of(opened.text)},
        follow_redirects=False,
    )
    assert marked.status_code == 303 and marked.headers["location"] == f"/messages/{first['id']}"
    after = client.get(marked.headers["location"])
    assert "已标为已读" in after.text and 'aria-label="1 条未读"' in after.text
    assert "标为已读</button>" not in after.text
    assert messages(client, auth)["unread"] == 1
    assert (
        client.post("/messages/99999/read", data={"csrf_token": csrf_of(opened.text)}).status_code
        == 404
    )
    # Someone else's message, or nonsense, is 404 like a missing one.
    stranger = bearer(client, register(client, name="陌生人"))
    theirs = client.post(f"/api/v1/messages/{first['id']}/read", headers=stranger)
    missing = client.post("/api/v1/messages/99999/read", headers=stranger)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert client.get("/messages/abc").status_code == 404
    assert client.post("/api/v1/messages/-1/read", headers=auth).status_code == 404
    read_all = client.post("/messages/read", data={"csrf_token": csrf_of(page.text)})
    assert read_all.status_code == 200 and "已将 1 条消息标为已读" in read_all.text
    assert messages(client, auth)["unread"] == 0
    api_read = client.post(f"/api/v1/messages/{first['id']}/read", headers=auth)
    assert api_read.status_code == 200 and api_read.json()["read_at"]
    assert client.get("/api/v1/messages").status_code == 401


def test_log_gateway_masks_the_phone(client, auth, person, settings, db, caplog):
    _, case_no = submitted_case(client, auth)
    accept(client, case_no)
    with caplog.at_level(logging.INFO, logger="portal.sms"):
        drain(settings.model_copy(update={"retry_first_seconds": 0.01}), db, FakeBureau())
    lines = [r.getMessage() for r in caplog.records if r.name == "portal.sms"]
    assert len(lines) == 1
    assert person["phone"][:3] + "****" + person["phone"][-4:] in lines[0]
    assert case_no in lines[0] and "http://127.0.0.1:8000/cases/" in lines[0]
    assert person["phone"] not in caplog.text and person["id_number"] not in caplog.text
    assert {row.status for row, _ in sms_jobs(db)} == {"delivered"}


# --- the HTTP gateway, on a real socket ----------------------------------------------------


class Gateway:
    """A loopback SMS gateway: answers 503 at first, then goes away, then comes back slow
    once (its answer lost to the client's timeout). Like a real gateway it keeps the first
    message of each id and answers 200 to repeats."""

    def __init__(self, port: int, *, failures: int, slow_seconds: float) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.failures = failures
        self.slow_seconds = slow_seconds
        self.slow_done = False
        self.lock = threading.Lock()
        self.stored: dict[str, dict] = {}
        self.order: list[str] = []
        self.requests: list[dict] = []
        self.server: ThreadingHTTPServer | None = None

    def handler(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status, body=b"{}", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):  # bureau blobs
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(201)

            def do_GET(self):  # a licence the bureau would serve: not this test's concern
                self._answer(404)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.startswith("/v1/"):
                    self._answer(200, b'{"status":"ok"}')
                    return
                body = json.loads(raw)
                with gateway.lock:
                    record = {
                        "id": body["id"],
                        "key": self.headers.get("Idempotency-Key"),
                        "auth": self.headers.get("Authorization"),
                    }
                    gateway.requests.append(record)
                    if gateway.failures > 0:
                        gateway.failures -= 1
                        record["answer"] = 503
                        fail = True
                    else:
                        fail = False
                        duplicate = body["id"] in gateway.stored
                        if not duplicate:
                            gateway.stored[body["id"]] = body
                            gateway.order.append(body["id"])
                        slow = not gateway.slow_done and not duplicate
                        gateway.slow_done = gateway.slow_done or slow
                        record["answer"] = 200
                if fail:
                    self._answer(503, headers={"Retry-After": "0"})
                    return
                if slow:
                    time.sleep(gateway.slow_seconds)  # the client gives up first
                with contextlib.suppress(OSError):  # the client may be gone
                    self._answer(
                        200, b'{"status":"duplicate"}' if duplicate else b'{"status":"ok"}'
                    )

        return Handler

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.timeout(120)
def test_http_gateway_outage_loses_nothing_and_sends_each_once(client, auth, person, settings, db):
    _, first = submitted_case(client, auth)
    approve(client, first)  # accepted, approved, reminder
    other = register(client, name="李四")
    other_auth = bearer(client, other)
    _, second = submitted_case(client, other_auth)
    accept(client, second)
    expected = sms_jobs(db)
    assert len(expected) == 4

    gateway = Gateway(free_port(), failures=3, slow_seconds=2.0)
    gateway.start()
    fast = settings.model_copy(
        update={
            "sms_gateway_url": gateway.url + "/sms",
            "sms_gateway_key": "gateway-key-123",
            "bureau_url": gateway.url,
            "retry_first_seconds": 0.05,
            "retry_max_seconds": 0.3,
            "http_timeout_seconds": 1.0,
        }
    )
    dispatcher = build_dispatcher(fast, db)

    def all_sent() -> bool:
        return all(row.status == "delivered" for row, _ in sms_jobs(db))

    async def scenario():
        task = asyncio.create_task(dispatcher.run())
        try:
            deadline = time.monotonic() + 20
            while gateway.failures and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gateway.failures == 0, "the dispatcher never reached the gateway"
            gateway.stop()  # down: connections refused
            await asyncio.sleep(1.0)
            assert not await asyncio.to_thread(all_sent)
            gateway.start()
            deadline = time.monotonic() + 40
            while not await asyncio.to_thread(all_sent):
                assert time.monotonic() < deadline, "not every SMS was delivered"
                await asyncio.sleep(0.1)
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        gateway.stop()

    ids = [row.event_id for row, _ in expected]
    # Every message arrived, exactly once, in order per account.
    assert sorted(gateway.order) == sorted(ids)
    first_ids = [row.event_id for row, job in expected if job["to"] == person["phone"]]
    assert [i for i in gateway.order if i in first_ids] == first_ids
    for row, job in expected:
        sent = gateway.stored[row.event_id]
        assert sent["to"] == job["to"] and sent["type"] == job["type"]
        assert sent["text"].startswith(job["text"])
        assert sent["text"].endswith(f"http://127.0.0.1:8000{job['path']}")
        assert sent["case_no"] in (first, second)
    # It was not easy: 503s, refused connections, and one answer lost to a timeout,
    # whose retry carried the same idempotency key.
    assert [r["answer"] for r in gateway.requests[:3]] == [503, 503, 503]
    repeated = [r for r in gateway.requests if r["answer"] == 200]
    assert len(repeated) == len(ids) + 1
    twice = [i for i in ids if sum(r["id"] == i for r in repeated) == 2]
    assert len(twice) == 1
    assert all(
        r["key"] == r["id"] and r["auth"] == "Bearer gateway-key-123" for r in gateway.requests
    )
    with db.session() as session:
        attempts = {r.event_id: r.attempts for r in session.scalars(select(OutboxMessage))}
    assert max(attempts[i] for i in ids) >= 2


def test_a_broken_text_never_turns_the_bureaus_event_away(client, auth, monkeypatch, caplog):
    import jinja2

    from portal.notifications import hooks

    def broken(event, context):
        raise jinja2.UndefinedError("'case' has no attribute 'typo'")

    monkeypatch.setattr(hooks, "render_texts", broken)
    _, case_no = submitted_case(client, auth)
    with caplog.at_level(logging.ERROR, logger="portal.notifications.hooks"):
        accept(client, case_no)  # asserts the callback answered 200
    [message] = messages(client, auth)["messages"]
    assert message["title"] == "已受理" and case_no in message["body"]
    assert "notification text case.accepted failed" in caplog.text
