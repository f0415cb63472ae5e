"""The outbox: 1,000 events delivered to the reference back office by the real dispatcher,
against a bare httpx loop posting the same signed bodies to an identical fresh back office."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time

import httpx
from sqlalchemy import func, select

from bench import seed
from bench.procs import BIN, free_port
from bench.results import Cpu, Result
from bench.stack import SECRET, STAFF, Stack, bureau_env, portal_env

EVENTS = 1000


def _bureau(stack: Stack, name: str):
    port = free_port()
    # No dispatcher at the back office: it has nothing to say back here, and its retries
    # would only add noise to the measurement.
    env = bureau_env(
        stack.root / name, "http://127.0.0.1:9", f"http://127.0.0.1:{port}", BUREAU_DISPATCHER="off"
    )
    return stack.add(name, [str(BIN / "bureau"), "serve", "--port", str(port)], env, port).start()


def _events(database_url: str) -> list[bytes]:
    """1,000 pre-review submissions of distinct cases, queued as the portal queues them."""
    from portal.db import Database
    from portal.exchange.models import OutboxMessage
    from portal.exchange.outbox import enqueue_event

    db = Database(database_url)
    try:
        with db.session(write=True) as session, session.begin():
            for n in range(EVENTS):
                enqueue_event(
                    session,
                    type="case.submitted",
                    case_no=f"WJB{n:08d}",
                    data={
                        "stage": "prereview",
                        "round": 1,
                        "item": {"code": "BENCH-001", "name": "基准测试事项"},
                        "applicant": {
                            "kind": "person",
                            "name": "王基准",
                            "id_type": "RIC",
                            "id_number": seed.make_ric(),
                            "phone": seed.make_phone(),
                        },
                        "form": {"用途": "基准测试", "面积": 120},
                        "materials": [],
                    },
                )
        with db.session() as session:
            rows = session.scalars(select(OutboxMessage.payload).order_by(OutboxMessage.id))
            return [row.encode("utf-8") for row in rows]
    finally:
        db.dispose()


def _received(url: str) -> int:
    with httpx.Client(base_url=url, auth=STAFF, timeout=60) as client:
        return len(client.get("/staff/api/v1/received").json()["events"])


def _timed_dispatcher(settings, db):
    """The real Dispatcher, with a stopwatch on its database work and its HTTP posts."""
    from portal.exchange.dispatcher import Dispatcher

    class Timed(Dispatcher):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.clock: dict[str, float] = {"claim": 0.0, "outcome": 0.0, "post": 0.0}
            self.count: dict[str, int] = {"claim": 0, "outcome": 0, "post": 0, "recorded": 0}
            self.in_flight = self.max_in_flight = 0

        def _note(self, what: str, started: float) -> None:
            self.clock[what] += time.perf_counter() - started
            self.count[what] += 1

        def claim(self, limit):
            started = time.perf_counter()
            try:
                return super().claim(limit)
            finally:
                self._note("claim", started)

        def _delivered(self, messages) -> None:
            started = time.perf_counter()
            try:
                super()._delivered(messages)
            finally:
                self._note("outcome", started)
                self.count["recorded"] += len(messages)

        async def _send_event(self, message) -> None:
            started = time.perf_counter()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await super()._send_event(message)
            finally:
                self.in_flight -= 1
                self._note("post", started)

    return Timed(settings, db)


def _dispatch(settings, database_url: str) -> tuple[float, dict]:
    """The real Dispatcher, in this process: seconds until every event is delivered."""
    from portal.db import Database
    from portal.exchange.models import OutboxMessage
    from portal.exchange.outbox import PENDING

    db = Database(database_url)
    dispatcher = _timed_dispatcher(settings, db)
    pending = select(func.count()).where(OutboxMessage.status == PENDING)

    def left() -> int:
        with db.session() as session:
            return session.scalar(pending) or 0

    async def main() -> float:
        started = time.perf_counter()
        task = asyncio.create_task(dispatcher.run())
        while await asyncio.to_thread(left):
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
        dispatcher.stop()
        await task
        return seconds

    try:
        seconds = asyncio.run(main())
    finally:
        db.dispose()
    c, n = dispatcher.clock, dispatcher.count
    return seconds, {
        "claims": n["claim"],
        "claim_ms_total": round(c["claim"] * 1000),
        "outcome_transactions": n["outcome"],
        "outcomes_recorded": n["recorded"],
        "outcome_ms_total": round(c["outcome"] * 1000),
        "posts": n["post"],
        "post_ms_mean": round(c["post"] * 1000 / max(1, n["post"]), 1),
        "posts_in_flight_max": dispatcher.max_in_flight,
    }


def _httpx_loop(url: str, bodies: list[bytes]) -> float:
    """The floor: one client posting the same signed bodies one after another."""
    from portal.exchange import signing

    started = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        for body in bodies:
            response = client.post(
                url + "/v1/events",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    signing.PORTAL_HEADER: signing.sign(SECRET, body),
                },
            )
            response.raise_for_status()
    return time.perf_counter() - started


def run(stack: Stack, out: list[Result]) -> None:
    from portal.settings import Settings

    data = stack.root / "outbox-portal"
    a, b = _bureau(stack, "bureau-outbox"), _bureau(stack, "bureau-httpx")
    env = portal_env(data, 9, a.url)
    subprocess.run(
        [str(BIN / "portal"), "db", "upgrade"],
        env={**stack.procs["portal"].env, **env},
        check=True,
        capture_output=True,
    )
    database_url = env["PORTAL_DATABASE_URL"]
    bodies = _events(database_url)
    settings = Settings(
        data_dir=data,
        database_url=database_url,
        secret_key=env["PORTAL_SECRET_KEY"],
        bureau_url=a.url,
        bureau_secret=SECRET,
        dispatcher=False,
    ).prepare()

    with Cpu([b.pid]) as cpu_b, LockProbe(stack.root / b.name / "bureau.db") as lock_b:
        loop_s = _httpx_loop(b.url, bodies)
    with (
        Cpu([a.pid]) as cpu_a,
        Cpu([os.getpid()]) as cpu_self,
        LockProbe(stack.root / a.name / "bureau.db") as lock_a,
    ):
        dispatch_s, timing = _dispatch(settings, database_url)
    got_a, got_b = _received(a.url), _received(b.url)
    result = Result(
        "outbox_vs_httpx",
        f"outbox: {EVENTS} events delivered ÷ bare httpx loop (time)",
        dispatch_s / loop_s,
        "<= 1.5",
        f"{dispatch_s:.2f} s vs {loop_s:.2f} s ({EVENTS / dispatch_s:.0f} vs {EVENTS / loop_s:.0f} "
        f"events/s); received {got_a} and {got_b}",
        {
            "dispatcher_seconds": dispatch_s,
            "httpx_seconds": loop_s,
            "received": [got_a, got_b],
            "bureau_cores": [round(cpu_a.ours, 2), round(cpu_b.ours, 2)],
            "dispatcher_process_cores": round(cpu_self.ours, 2),
            "dispatcher": timing,
            "loop_post_ms_mean": round(loop_s * 1000 / EVENTS, 1),
            "bureau_write_lock_held": [round(lock_a.held, 3), round(lock_b.held, 3)],
        },
    )
    if got_a != EVENTS or got_b != EVENTS:
        result.value = None
        result.why = f"the back offices received {got_a} and {got_b} of {EVENTS} events"
    elif result.met is False:
        outcome_ms = timing["outcome_ms_total"] / max(1, timing["outcome_transactions"])
        result.why = (
            f"the back office was less busy under the dispatcher ({cpu_a.ours:.2f} vs "
            f"{cpu_b.ours:.2f} cores, its SQLite write lock held in {lock_a.held:.0%} vs "
            f"{lock_b.held:.0%} of probes), so the time went on the portal's side: each delivered "
            f"event is recorded in a write transaction (BEGIN IMMEDIATE on the portal's "
            f"SQLite), deliveries that finish together in one: {timing['outcomes_recorded']} in "
            f"{timing['outcome_transactions']} transactions of {outcome_ms:.1f} ms on average, "
            f"one after another on the single writer, against {dispatch_s * 1000 / EVENTS:.1f} ms per event overall; "
            f"{timing['claims']} claims took {timing['claim_ms_total']} ms in all; a POST took "
            f"{timing['post_ms_mean']} ms on average with up to {timing['posts_in_flight_max']} "
            f"in flight vs {loop_s * 1000 / EVENTS:.1f} ms one at a time in the loop; the "
            f"dispatcher's process used {cpu_self.ours:.2f} cores"
        )
    out.append(result)
    stack.stop(a.name)
    stack.stop(b.name)


class LockProbe:
    """Share of probes (every 20 ms) that found an SQLite database's write lock taken."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.samples: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from bench.scenarios.slow import _write_lock_held

        while not self._stop.is_set():
            self.samples.append(_write_lock_held(self.path))
            time.sleep(0.02)

    def __enter__(self) -> LockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def held(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0
