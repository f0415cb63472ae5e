"""Status page latency while 100 clients upload at 750 kbit/s each, against no uploads."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections import Counter

from bench import seed
from bench.load import Multipart, SlowResult, make_pdf, run_wrk, run_wrk_async, slow_upload
from bench.procs import proc_status
from bench.results import Result
from bench.stack import Stack

CLIENTS = 100
BITS_PER_SECOND = 750_000
FILE_BYTES = 2_500_000  # ~27 s at 750 kbit/s: longer than the measured window
SECONDS = 10
CONNECTIONS = 4


def run(stack: Stack, out: list[Result]) -> None:
    citizen = stack.info.get("citizen") or seed.Citizen(stack.portal_url)
    item = seed.choose_item(citizen.http, prereview=False)
    files = stack.root / "slow"
    files.mkdir(exist_ok=True)
    uploads = []
    for i in range(CLIENTS):
        case_no = seed.draft(citizen, item)
        body = Multipart(make_pdf(files / f"{i}.pdf", FILE_BYTES, seed=1000 + i))
        uploads.append((seed.upload_path(case_no, item), body))
    page = f"{stack.portal_url}/cases/{stack.info['case_no']}"
    headers = {"Cookie": stack.info["cookie"]}
    portal = stack.procs["portal"]

    run_wrk(page, seconds=2, connections=CONNECTIONS, headers=headers)  # warm
    quiet = run_wrk(
        page, seconds=SECONDS, connections=CONNECTIONS, headers=headers, count_status=True
    )
    log_before = len(portal.log_text())
    loaded, results, probes, threads = asyncio.run(
        _under_uploads(stack, page, headers, uploads, citizen.headers, portal.pid)
    )
    log = portal.log_text()[log_before:]
    locked, pool = log.count("database is locked"), log.count("QueuePool limit")
    statuses = Counter(str(r.status) if r.status else r.error.split(":")[0] for r in results)
    # The server's own access lines count what it answered, including the answers a
    # client never read because the server closed the connection mid-upload.
    served = _served(log)
    upload_5xx = sum(n for s, n in served["upload"].items() if s.startswith("5"))
    page_5xx = sum(n for s, n in served["page"].items() if s.startswith("5"))
    held = sum(probes) / len(probes) if probes else 0.0
    durations = sorted(r.seconds for r in results)
    # (Almost) no page answered within the window: wrk's p95 covers only the few that
    # did, while the others were still waiting; the p95 is at least the window itself.
    starved = loaded.requests < 0.05 * quiet.requests
    p95 = SECONDS * 1000.0 if starved else loaded.p95_ms
    shown = f">{p95:.0f}" if starved else f"{p95:.0f}"
    ratio = Result(
        "p95_under_slow_uploads",
        f"case page p95 with {CLIENTS} uploads at 750 kbit/s ÷ p95 without",
        p95 / quiet.p95_ms if quiet.p95_ms else None,
        "<= 1.5",
        f"p95 {shown} vs {quiet.p95_ms:.0f} ms ({loaded.requests} pages in {SECONDS}s vs "
        f"{quiet.requests}); uploads answered {dict(served['upload'])}",
        {
            "quiet": quiet.as_dict(),
            "loaded": loaded.as_dict(),
            "uploads_client_side": dict(statuses),
            "uploads_server_side": dict(served["upload"]),
            "pages_server_side": dict(served["page"]),
            "upload_seconds_min_median_max": [
                round(durations[0], 1),
                round(durations[len(durations) // 2], 1),
                round(durations[-1], 1),
            ],
            "sqlite_write_lock_held_fraction": round(held, 3),
            "server_threads_max": max(threads) if threads else None,
            "log_database_is_locked": locked,
            "log_queuepool_timeouts": pool,
            "page_requests_completed": loaded.requests,
            "wrk": f"-t1 -c{CONNECTIONS} -d{SECONDS}s",
        },
    )
    if ratio.met is False or upload_5xx or page_5xx:
        ratio.why = (
            f"while the uploads streamed, the SQLite write lock was held in {held:.0%} of "
            f"{len(probes)} probes (BEGIN IMMEDIATE from outside, every 0.2 s); the server had "
            f"up to {max(threads) if threads else '?'} threads; the log shows {locked} 'database is "
            f"locked' and {pool} connection-pool timeouts (QueuePool limit); uploads took "
            f"{durations[0]:.0f}–{durations[-1]:.0f} s (pacing alone: "
            f"{FILE_BYTES * 8 / BITS_PER_SECOND:.0f} s)"
        )
    out.append(ratio)
    out.append(
        Result(
            "slow_uploads_5xx",
            "5xx answers during the slow uploads (page + uploads)",
            float(upload_5xx + page_5xx),
            "== 0",
            f"server answered uploads {dict(served['upload'])}, pages {dict(served['page'])}",
            why=ratio.why if upload_5xx + page_5xx else "",
            figures={"uploads": dict(served["upload"]), "pages": dict(served["page"])},
        )
    )


async def _under_uploads(stack, page, headers, uploads, auth, pid):
    host, port = "127.0.0.1", stack.procs["portal"].port
    db_path = stack.database_url.removeprefix("sqlite:///")
    probes: list[bool] = []
    threads: list[int] = []
    stop = asyncio.Event()

    async def probe() -> None:
        # Can another writer start now? BEGIN IMMEDIATE with no wait tells, without waiting.
        while not stop.is_set():
            held = await asyncio.to_thread(_write_lock_held, db_path)
            probes.append(held)
            threads.append(proc_status(pid).get("Threads", 0))
            await asyncio.sleep(0.2)

    async def one(index: int, path: str, body: Multipart):
        await asyncio.sleep(index * 0.02)  # 100 clients arrive over 2 s
        return await slow_upload(host, port, path, body, auth, BITS_PER_SECOND)

    prober = asyncio.create_task(probe())
    tasks = [asyncio.create_task(one(i, p, b)) for i, (p, b) in enumerate(uploads)]
    await asyncio.sleep(len(uploads) * 0.02 + 3)
    started = time.monotonic()
    loaded = await run_wrk_async(
        page, seconds=SECONDS, connections=CONNECTIONS, headers=headers, count_status=True
    )
    if time.monotonic() - started < SECONDS:
        raise RuntimeError("wrk ended early")
    # Every upload gets its pacing time plus a minute; one still going then is a failure.
    limit = FILE_BYTES * 8 / BITS_PER_SECOND + 60
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in pending:
        task.cancel()
    results = [
        t.result() if t in done else SlowResult(None, limit, "Unfinished: still uploading")
        for t in tasks
    ]
    stop.set()
    await prober
    return loaded, results, probes, threads


def _write_lock_held(path: str) -> bool:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


ACCESS = re.compile(r" (GET|POST) (\S+) (\d{3}) [\d.]+ms")


def _served(log: str) -> dict[str, Counter]:
    """Statuses the portal logged for the uploads and for the case page."""
    out: dict[str, Counter] = {"upload": Counter(), "page": Counter()}
    for method, path, status in ACCESS.findall(log):
        if method == "POST" and path.endswith("/files"):
            out["upload"][status] += 1
        elif method == "GET" and path.startswith("/cases/"):
            out["page"][status] += 1
    return out
