"""Child processes of a bench run: started on free ports, watched, always stopped."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_started: list[Proc] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """One server (or worker) process with its own log file; stopped at exit whatever happens."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log_dir: Path, port: int | None
    ) -> None:
        self.name = name
        self.command = command
        self.env = {**os.environ, **env}
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_path: str | None = "/healthz", seconds: float = 60) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        # A session of its own: stopping it never touches anything else on the machine.
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        _started.append(self)
        if ready_path is not None:
            self.wait_http(ready_path, seconds)
        return self

    def wait_http(self, path: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {path} within {seconds}s; see {self.log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        # The process group we created: uvicorn's worker processes go with their parent.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def stop_all() -> None:
    for proc in reversed(_started):
        try:
            proc.stop()
        except Exception as exc:  # cleanup goes on for the others
            print(f"  could not stop {proc.name}: {exc}", file=sys.stderr)


atexit.register(stop_all)


def children(pid: int) -> list[int]:
    """Direct child pids (uvicorn's worker processes)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of a process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0, own processes); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def wait_until(check, seconds: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise RuntimeError(f"timed out after {seconds}s waiting for {what} (last: {last!r})")
