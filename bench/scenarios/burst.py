"""100 concurrent PATCHes of drafts from 5 accounts, against the same writes one at a time.

The ratios: the burst's writes per second ÷ one writer's, its p99 ÷ its own queueing
time (100 × one writer's median), the item list's latency during the burst ÷ quiet, and
the 5xx count (goal 0; a 503 with Retry-After is the only refusal allowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections import Counter

import httpx

from bench import seed
from bench.results import Result
from bench.stack import Stack

ACCOUNTS = 5
WRITERS = 100
SEQUENTIAL = 30
READ = "/api/v1/items"


def run(stack: Stack, out: list[Result]) -> None:
    item = seed.choose_item(httpx.Client(base_url=stack.portal_url, timeout=60), prereview=False)
    form = seed.valid_form(item)
    citizens = [seed.Citizen(stack.portal_url) for _ in range(ACCOUNTS)]
    drafts = [
        (c.headers, seed.draft(c, item)) for c in citizens for _ in range(WRITERS // ACCOUNTS)
    ]
    one = asyncio.run(_sequential(stack.portal_url, drafts[:SEQUENTIAL], form))
    burst = asyncio.run(_burst(stack.portal_url, drafts, form))

    single = statistics.median(one["writes"])
    quiet_read = statistics.median(one["reads"])
    durations = sorted(seconds for _, seconds, _ in burst["answers"])
    p99 = durations[min(len(durations) - 1, int(0.99 * len(durations)))]
    statuses = Counter(status for status, _, _ in burst["answers"])
    fivexx = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    no_retry_after = sum(1 for s, _, h in burst["answers"] if s == 503 and "retry-after" not in h)
    unanswered = statuses.get(0, 0)
    rate = WRITERS / burst["seconds"]
    read_max = max(burst["reads"]) if burst["reads"] else None
    figures = {
        "statuses": {str(k): v for k, v in statuses.items()},
        "burst_seconds": round(burst["seconds"], 2),
        "writes_per_second": round(rate, 1),
        "p50_ms": round(durations[len(durations) // 2] * 1000),
        "p99_ms": round(p99 * 1000),
        "single_write_median_ms": round(single * 1000, 1),
        "read_ms_during_burst": [round(r * 1000) for r in burst["reads"]],
        "read_ms_quiet_median": round(quiet_read * 1000, 1),
    }
    raw = (
        f"{rate:.0f} writes/s in the burst vs {1 / single:.0f}/s one at a time; p99 "
        f"{p99 * 1000:.0f} ms; answers {dict(statuses)}; reads during it "
        f"{[round(r * 1000) for r in burst['reads']]} ms vs {quiet_read * 1000:.0f} quiet"
    )
    out.append(
        Result(
            "burst_writes_per_second",
            f"writes/s with {WRITERS} concurrent PATCHes ÷ one writer at a time",
            rate * single,
            ">= 0.5",
            raw,
            figures,
        )
    )
    out.append(
        Result(
            "burst_p99_queueing",
            f"burst p99 ÷ its own queueing time ({WRITERS} × one write's median)",
            p99 / (WRITERS * single),
            "<= 1.5",
            raw,
            figures,
        )
    )
    reading = Result(
        "burst_read_page",
        f"{READ} slowest latency during the burst, seconds (goal: within 1 s)",
        read_max,
        "<= 1.0",
        raw,
        figures,
    )
    if reading.met is False:
        load = burst["loadavg"]
        reading.why = (
            f"{sum(r > 1 for r in burst['reads'])} of {len(burst['reads'])} reads over 1 s; "
            f"machine load average {load:.1f} on {os.cpu_count()} CPUs during the burst "
            f"(the portal's writers hold at most one SQLite writer, two PostgreSQL ones)"
        )
    out.append(reading)
    bad = Result(
        "burst_5xx",
        "5xx other than 503, 503 without Retry-After, or no answer within 30 s",
        float(fivexx + no_retry_after + unanswered),
        "== 0",
        raw,
        figures,
    )
    if bad.met is False:
        log = stack.procs["portal"].log_text()
        bad.why = (
            f"{fivexx} × 5xx, {no_retry_after} × 503 without Retry-After, {unanswered} unanswered; "
            f"the log shows {log.count('database is locked')} 'database is locked' and "
            f"{log.count('QueuePool limit')} connection-pool timeouts"
        )
    out.append(bad)


async def _sequential(url: str, drafts, form) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        writes, reads = [], []
        for headers, case_no in drafts:
            t0 = time.monotonic()
            r = await http.patch(f"/api/v1/cases/{case_no}", json={"form": form}, headers=headers)
            r.raise_for_status()
            writes.append(time.monotonic() - t0)
            t0 = time.monotonic()
            (await http.get(READ)).raise_for_status()
            reads.append(time.monotonic() - t0)
        return {"writes": writes, "reads": reads}


async def _burst(url: str, drafts, form) -> dict:
    limits = httpx.Limits(max_connections=WRITERS + 10, max_keepalive_connections=WRITERS + 10)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        start = asyncio.Event()

        async def write(headers, case_no):
            await start.wait()
            t0 = time.monotonic()
            try:
                r = await http.patch(
                    f"/api/v1/cases/{case_no}", json={"form": form}, headers=headers
                )
            except httpx.TimeoutException:
                return 0, time.monotonic() - t0, {}
            return r.status_code, time.monotonic() - t0, r.headers

        async def read(stop: asyncio.Event) -> list[float]:
            await start.wait()
            seen = []
            while not stop.is_set():
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                with contextlib.suppress(httpx.TimeoutException):
                    await http.get(READ)
                seen.append(time.monotonic() - t0)
            return seen

        stop = asyncio.Event()
        tasks = [asyncio.create_task(write(h, c)) for h, c in drafts]
        reader = asyncio.create_task(read(stop))
        t0 = time.monotonic()
        start.set()
        answers = await asyncio.gather(*tasks)
        seconds = time.monotonic() - t0
        stop.set()
        loadavg = os.getloadavg()[0]
        return {"answers": answers, "seconds": seconds, "reads": await reader, "loadavg": loadavg}
