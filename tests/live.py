"""Real servers for tests: uvicorn on a loopback port, in a thread or a subprocess;
waiting for something to happen (`wait_until`); filing a case on a running portal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from tests.conftest import PDF_BYTES, valid_form

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], seconds: float = 10, message: str = "condition", poll: float = 0.02
) -> T:
    """Poll until `predicate()` is truthy and return it; fail after `seconds` saying `message`.

    Instead of a fixed sleep: a positive check returns as soon as the thing happened.
    A negative check ("nothing else arrived") waits with this for a positive sign that
    the system has done what it would have done (an attempt counted, a later event
    delivered), then asserts the absence.
    """
    deadline = time.monotonic() + seconds
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {seconds}s waiting for {message} (last: {last!r})"
            )
        time.sleep(poll)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 30, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # a refused connect costs little; the start is what is waited for
    raise RuntimeError(f"{url} did not come up within {seconds}s")


class ThreadServer:
    """An ASGI app served by uvicorn in a background thread of the test process."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_until_up(self.url + "/healthz")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ProcessServer:
    """`portal serve` / `bureau serve` as a child process (can be SIGKILLed)."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.command = command
        self.env = {**os.environ, **env}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.cwd: Path = ROOT

    def launch(self) -> ProcessServer:
        """Start the child without waiting: several servers can boot side by side."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
        )
        return self

    def wait_up(self) -> ProcessServer:
        wait_until_up(self.url + "/healthz", 60, self.proc)
        return self

    def start(self) -> ProcessServer:
        return self.launch().wait_up()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --- a case on a running portal (tests/e2e/harness.py's Portal) ----------------------------


def choose_item(portal, *, prereview: bool) -> dict:
    for summary in portal.http.get("/api/v1/items").json()["items"]:
        if summary["prereview"] == prereview and summary["online"]:
            return portal.http.get(f"/api/v1/items/{summary['code']}").json()
    raise AssertionError("no such item")


def draft_with_materials(portal, item) -> str:
    """A draft of `item` with its form filled and every required material uploaded."""
    case_no = portal.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}
    ).json()["case_no"]
    for material in item["materials"]:
        if material["required"]:
            content = PDF_BYTES + f"%{material['code']}".encode()
            response = portal.post(
                f"/api/v1/cases/{case_no}/materials/{material['code']}/files",
                files={"file": ("m.pdf", content, "application/pdf")},
            )
            assert response.status_code == 201, response.text
    return case_no


def file_a_case(portal, *, prereview: bool) -> tuple[str, dict]:
    item = choose_item(portal, prereview=prereview)
    return draft_with_materials(portal, item), item


def status_is(portal, case_no, status):
    return lambda: portal.case(case_no)["status"] == status


def bureau_has(bureau, case_no, status):
    def check():
        try:
            return bureau.case(case_no)["status"] == status
        except Exception:
            return False

    return check


# --- what a running portal's outbox holds (read from its database) ----------------------


def outbox_counts(database_url: str, kind: str = "bureau_event") -> dict[str, int]:
    """{status: messages, "attempts": tries so far} of the portal's outbox, read from the
    database the running portal writes: a positive sign to wait for before a negative
    check, e.g. every message delivered, so nothing can be sent twice afterwards."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT status, count(*), coalesce(sum(attempts), 0) FROM outbox"
                    " WHERE kind = :kind GROUP BY status"
                ),
                {"kind": kind},
            ).all()
    finally:
        engine.dispose()
    counts = {status: n for status, n, _ in rows}
    counts["attempts"] = sum(tries for _, _, tries in rows)
    return counts


def outbox_settled(database_url: str, expected: int) -> bool:
    """Every one of `expected` bureau events recorded as delivered, none waiting."""
    counts = outbox_counts(database_url)
    return counts.get("delivered", 0) == expected and not counts.get("pending")
