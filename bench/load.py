"""Load generators of the bench: wrk for requests/s and latency, hand-made upload clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.procs import ROOT, proc_status, reset_peak

LUA = ROOT / "bench" / "report.lua"


def ensure_wrk() -> str:
    """wrk from Debian's package; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: run `sudo apt-get install -y wrk` and retry")
    print("wrk is missing: running `apt-get update && apt-get install -y wrk` (Debian package)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get did not provide wrk")
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors and timeouts
    status_errors: int  # answers >= 400
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "errors": self.errors,
            "status_errors": self.status_errors,
            "statuses": self.statuses,
        }


def wrk_command(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
) -> list[str]:
    cmd = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
    ]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    return [*cmd, url]


def parse_wrk(output: str) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        status_errors=raw["status_errors"],
        statuses=raw["statuses"],
    )


def wrk_env(method: str | None = None, body: str | None = None, count_status: bool = False):
    env = dict(os.environ)
    for key in ("WRK_METHOD", "WRK_BODY", "WRK_COUNT_STATUS"):
        env.pop(key, None)
    if method:
        env["WRK_METHOD"] = method
    if body:
        env["WRK_BODY"] = body
    if count_status:
        env["WRK_COUNT_STATUS"] = "1"
    return env


def run_wrk(url: str, *, method=None, body=None, count_status=False, **kw) -> WrkResult:
    cmd = wrk_command(url, **kw)
    done = subprocess.run(
        cmd, env=wrk_env(method, body, count_status), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse_wrk(done.stdout)


async def run_wrk_async(url: str, *, count_status: bool = False, **kw) -> WrkResult:
    cmd = wrk_command(url, **kw)
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=wrk_env(count_status=count_status),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()[-2000:]}")
    return parse_wrk(out.decode())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# --- multipart bodies, streamed from a file -------------------------------------------------


class Multipart:
    """A multipart/form-data body with one `file` part read from disk in 64 KiB chunks.

    The client never holds the file: what is measured is the server's memory.
    """

    CHUNK = 64 * 1024

    def __init__(self, path: Path, filename: str = "scan.pdf", fields: dict | None = None):
        self.path = path
        self.boundary = "bench" + uuid.uuid4().hex
        head = b""
        for name, value in (fields or {}).items():
            head += (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n"
            ).encode()
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        self.head = head
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.length = len(self.head) + path.stat().st_size + len(self.tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        with open(self.path, "rb") as fh:
            while chunk := fh.read(self.CHUNK):
                yield chunk
        yield self.tail

    async def achunks(self):
        for chunk in self.chunks():
            yield chunk


def make_pdf(path: Path, size: int, seed: int) -> Path:
    """A well-formed one-page PDF of about `size` bytes: seeded noise in 1 MiB streams.

    The portal parses every upload (pypdf walks each object), so the file must be a
    real PDF; streams of 1 MiB are what a scanner writes page by page.
    """
    import random

    rng = random.Random(seed)
    chunk = 1024 * 1024
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<<>>>>",
    ]
    with open(path, "wb") as fh:
        fh.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, 1):
            offsets.append(fh.tell())
            fh.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        for extra in range(max(1, size // chunk)):
            offsets.append(fh.tell())
            fh.write(b"%d 0 obj\n<</Length %d>>\nstream\n" % (4 + extra, chunk))
            fh.write(_noise(rng, chunk))
            fh.write(b"\nendstream\nendobj\n")
        xref, count = fh.tell(), len(offsets) + 1
        fh.write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        fh.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
        fh.write(b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (count, xref))
    return path


def _noise(rng, n: int) -> bytes:
    # High-bit bytes only (0x80-0xBF): fast to make, and no ASCII at all.
    raw = rng.randbytes(n)
    return raw.translate(bytes((b & 0x3F) | 0x80 for b in range(256)))


def upload(url: str, body: Multipart, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """One streamed upload; (status, seconds)."""
    started = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        response = client.post(
            url,
            content=body.chunks(),
            headers={
                "Content-Type": body.content_type,
                "Content-Length": str(body.length),
                **(headers or {}),
            },
        )
    return response.status_code, time.perf_counter() - started


class RssSampler:
    """Samples VmRSS of a process (and its children) every few ms; peak growth over a baseline."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline_kb = proc_status(pid).get("VmRSS", 0)
        self.peak_kb = self.baseline_kb
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.hwm_reset = False

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = proc_status(self.pid).get("VmRSS", 0)
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        # VmHWM reset to the current RSS, so the kernel's own peak catches what sampling misses.
        self.hwm_reset = reset_peak(self.pid)
        self.baseline_kb = proc_status(self.pid).get("VmRSS", 0)
        self.peak_kb = self.baseline_kb
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.hwm_reset:
            self.peak_kb = max(self.peak_kb, proc_status(self.pid).get("VmHWM", 0))

    @property
    def growth_bytes(self) -> int:
        return max(0, self.peak_kb - self.baseline_kb) * 1024


# --- slow uploaders ----------------------------------------------------------------------------


@dataclass
class SlowResult:
    status: int | None
    seconds: float
    error: str = ""


async def slow_upload(
    host: str,
    port: int,
    path: str,
    body: Multipart,
    headers: dict[str, str],
    bits_per_second: float,
    chunk: int = 4096,
) -> SlowResult:
    """One client on a slow link: the request body paced to `bits_per_second` over a raw socket."""
    started = time.perf_counter()
    reader = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}:{port}",
            f"Content-Type: {body.content_type}",
            f"Content-Length: {body.length}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        pace_start = time.perf_counter()
        buffer = b""
        for piece in body.chunks():
            buffer += piece
            while len(buffer) >= chunk:
                part, buffer = buffer[:chunk], buffer[chunk:]
                writer.write(part)
                sent += len(part)
                due = pace_start + sent * 8 / bits_per_second
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await writer.drain()
        if buffer:
            writer.write(buffer)
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=120)
        await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
        status = int(status_line.split()[1]) if status_line else None
        return SlowResult(status, time.perf_counter() - started)
    except Exception as exc:  # a failed upload is a result, reported in the table
        status = None
        if reader is not None:
            # The server may have answered (and closed) before the body was all sent.
            with contextlib.suppress(Exception):
                line = await asyncio.wait_for(reader.readline(), timeout=1)
                status = int(line.split()[1]) if line.startswith(b"HTTP/") else None
        return SlowResult(status, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
