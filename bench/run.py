"""`make bench`: start everything, measure each ratio side by side, print the table,
write bench/results.json. Runs in under 10 minutes on 2 cores; cleans up after itself.

    .venv/bin/python -m bench.run [--only page,pages,uploads,outbox,slow,burst,search] [--keep]
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import sys
import time
import traceback
from datetime import UTC, datetime

from bench.load import ensure_wrk
from bench.results import Result, machine, table, write_json
from bench.stack import Stack

SCENARIOS = ["page", "pages", "uploads", "outbox", "slow", "burst", "search"]
# Scenarios that measure inside this process and need no servers.
IN_PROCESS = {"search"}
WHAT = {
    "page": "status page ÷ bare route, without the database, 2 workers ÷ 1, writes on 2 workers",
    "pages": "Lighthouse on the start, item and case pages",
    "uploads": "RSS while streaming 200 MB (and 4 at once), throughput ÷ raw stream to disk",
    "outbox": "1,000 events through the dispatcher ÷ a bare httpx loop",
    "slow": "case page p95 while 100 clients upload at 750 kbit/s",
    "burst": "100 concurrent PATCHes from 5 accounts ÷ one at a time, a read page during it",
    "search": "top-3 hit rate of everyday queries and ms per query ÷ a bare substring match",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")

    servers = bool(set(chosen) - IN_PROCESS)
    if servers:
        ensure_wrk()
    # A plain `kill` cleans up as Ctrl-C does: the finally below stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    meta = {"started": datetime.now(UTC).isoformat(timespec="seconds"), **machine()}
    print(f"bench: {meta['cpus']} CPUs, load average {' '.join(meta['loadavg_at_start'])}")
    print("       ratios are measured side by side in this run; raw figures depend on the machine")
    stack = Stack.create()
    results: list[Result] = []
    durations: dict[str, float] = {}
    failed: dict[str, str] = {}
    started = time.monotonic()
    try:
        if servers:
            print(f"- starting the back office and the portal (temp dir {stack.root})")
            stack.start_core()
        if servers and "page" not in chosen:
            # The page scenario seeds the case and the session the others use.
            from bench.scenarios import page

            page.prepare(stack)
        for name in [s for s in SCENARIOS if s in chosen]:
            print(f"- {name}: {WHAT[name]}", flush=True)
            t0 = time.monotonic()
            module = importlib.import_module(f"bench.scenarios.{name}")
            try:
                module.run(stack, results)
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                print(f"  {name} failed; logs in {stack.logs}", file=sys.stderr)
                if name == "page":
                    break  # nothing else can run without its case and session
            durations[name] = round(time.monotonic() - t0, 1)
            print(f"  done in {durations[name]:.0f}s", flush=True)
    finally:
        stack.stop_all()
    meta.update(
        seconds=round(time.monotonic() - started, 1),
        scenario_seconds=durations,
        failed_scenarios=failed,
        page_identical_html=stack.info.get("page_identical"),
    )
    print()
    print(table(results))
    if failed:
        print(
            "\nScenarios that did not finish: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        )
    path = write_json(results, meta)
    met = sum(1 for r in results if r.met)
    print(f"\n{met} of {len(results)} goals met in {meta['seconds']:.0f}s; written to {path}")
    if args.keep or failed:
        print(f"logs and data kept in {stack.root}")
    else:
        shutil.rmtree(stack.root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
