"""Real servers for tests: uvicorn on a loopback port, in a thread or a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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
        time.sleep(0.1)
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
