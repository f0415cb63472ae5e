"""The status page: portal ÷ bare route, without the database, and 2 workers ÷ 1; writes on 2."""

from __future__ import annotations

import json
import re

import httpx

from bench import seed
from bench.load import median, run_wrk
from bench.procs import children
from bench.results import Cpu, Result
from bench.stack import MAX_UPLOAD_MB, Stack

ROUNDS = 3
SECONDS = 5
CONNECTIONS = 8


def _norm(html: str) -> str:
    return re.sub(r'(name="csrf_token" value=")[^"]+"', r"\1-", html)


def prepare(stack: Stack) -> None:
    """One accepted case with its timeline, a browser session, and the baselines started."""
    citizen = seed.Citizen(stack.portal_url)
    case_no = seed.accepted_case(citizen, stack.bureau)
    cookie, web = seed.web_session(stack.portal_url, citizen.phone)
    context = seed.capture_context(
        stack.database_url, case_no, MAX_UPLOAD_MB, stack.root / "case-context.pickle"
    )
    stack.start_baselines(context)
    stack.info.update(citizen=citizen, case_no=case_no, cookie=cookie, context_file=context)
    real = web.get(f"/cases/{case_no}")
    assert real.status_code == 200, real.status_code
    bare = httpx.get(stack.procs["bare-page"].url + "/page").text
    nodb = httpx.get(
        stack.procs["portal-nodb"].url + "/bench/page", headers={"Cookie": cookie}
    ).text
    # The baselines must render the very page the portal renders, or the ratio means nothing.
    same = _norm(real.text) == _norm(bare) == _norm(nodb)
    stack.info["page_bytes"] = len(real.content)
    stack.info["page_identical"] = same
    if not same:
        print("  warning: the bare page differs from the portal's; ratios are approximate")


def targets(stack: Stack) -> dict[str, tuple[str, dict[str, str]]]:
    cookie = {"Cookie": stack.info["cookie"]}
    return {
        "bare": (stack.procs["bare-page"].url + "/page", {}),
        "nodb": (stack.procs["portal-nodb"].url + "/bench/page", cookie),
        "portal": (f"{stack.portal_url}/cases/{stack.info['case_no']}", cookie),
    }


def _check_ok(name: str, result) -> None:
    if result.errors or result.status_errors:
        raise RuntimeError(f"{name}: {result.status_errors} error answers, {result.errors} errors")


def run(stack: Stack, out: list[Result]) -> None:
    prepare(stack)
    urls = targets(stack)
    for url, headers in urls.values():  # warm up: imports, caches, connection pools
        run_wrk(url, seconds=1, connections=CONNECTIONS, headers=headers)
    rps: dict[str, list[float]] = {name: [] for name in urls}
    latency: dict[str, list[float]] = {name: [] for name in urls}
    # Interleaved rounds: a burst of load from someone else on the machine hits all three.
    for _ in range(ROUNDS):
        for name, (url, headers) in urls.items():
            result = run_wrk(url, seconds=SECONDS, connections=CONNECTIONS, headers=headers)
            _check_ok(name, result)
            rps[name].append(result.rps)
            latency[name].append(result.p50_ms)
    bare, nodb, portal = (median(rps[n]) for n in ("bare", "nodb", "portal"))
    note = "" if stack.info["page_identical"] else " (bare page differs!)"
    figures = {
        "rps_rounds": rps,
        "p50_ms_rounds": latency,
        "page_bytes": stack.info["page_bytes"],
        "identical_html": stack.info["page_identical"],
        "wrk": f"-t1 -c{CONNECTIONS} -d{SECONDS}s x {ROUNDS} interleaved rounds, median",
    }
    out.append(
        Result(
            "status_page_vs_bare",
            "status page ÷ bare Starlette route (req/s)",
            portal / bare,
            ">= 0.5",
            f"{portal:.0f} vs {bare:.0f} req/s, {stack.info['page_bytes']} B page{note}",
            figures,
        )
    )
    out.append(
        Result(
            "status_page_nodb_vs_bare",
            "same page, portal stack without DB ÷ bare",
            nodb / bare,
            ">= 0.75",
            f"{nodb:.0f} vs {bare:.0f} req/s",
            figures,
        )
    )
    db_result, stack_result = out[-2], out[-1]
    if db_result.met is False or stack_result.met is False:
        _explain(stack, db_result, stack_result, portal, nodb, bare)
    run_workers(stack, out)


def _fmt(top: list) -> str:
    return ", ".join(f"{owner} {ms:.2f}" for owner, ms in top)


def _explain(stack: Stack, db_result: Result, stack_result: Result, portal, nodb, bare) -> None:
    """Measured causes: the same work repeated in this process, counted and profiled."""
    from bench import profile

    per = {name: 1000 / rps for name, rps in (("portal", portal), ("nodb", nodb), ("bare", bare))}
    database = profile.case_page_database(stack.database_url, stack.info["case_no"])
    layers = profile.portal_stack(
        stack.portal_env, stack.info["context_file"], stack.info["cookie"]
    )
    render_ms = profile.bare_render(stack.info["context_file"])
    figures = {"database": database, "portal_stack": layers, "render_only_ms": render_ms}
    db_result.figures["cause"] = figures
    stack_result.figures["cause"] = figures
    if db_result.met is False:
        db_result.why = (
            f"served, a page costs {per['portal']:.1f} ms vs {per['nodb']:.1f} ms without the "
            f"database. In-process, the case page's database work takes {database['ms_per_page']} "
            f"ms: {database['statements_per_page']:.0f} SQL statements, of which "
            f"{database['sqlite_ms_per_page']} ms inside SQLite; self time per page (ms) by "
            f"package: {_fmt(database['packages'])}; by module: {_fmt(database['top'])}"
        )
    if stack_result.met is False:
        stack_result.why = (
            f"served, {per['nodb']:.2f} ms vs {per['bare']:.2f} ms per page. In-process the "
            f"template render alone takes {render_ms} ms, the portal's whole request path around "
            f"it {layers['ms_per_request']} ms (before the thread-pool hop of its sync routes); "
            f"self time per request (ms) by package: {_fmt(layers['packages'])}; by module: "
            f"{_fmt(layers['top'])}"
        )


def run_workers(stack: Stack, out: list[Result]) -> None:
    two = stack.start_portal_workers(2)
    one = stack.procs["portal"]
    cookie = {"Cookie": stack.info["cookie"]}
    path = f"/cases/{stack.info['case_no']}"
    connections = 16
    for proc in (one, two):
        run_wrk(proc.url + path, seconds=1, connections=connections, headers=cookie)
    rps: dict[str, list[float]] = {"1": [], "2": []}
    cpu: dict[str, list[str]] = {"1": [], "2": []}
    for _ in range(ROUNDS):
        for name, proc in (("1", one), ("2", two)):
            pids = [proc.pid, *children(proc.pid)]
            with Cpu(pids) as meter:
                result = run_wrk(
                    proc.url + path, seconds=SECONDS, connections=connections, headers=cookie
                )
            _check_ok(f"portal {name} worker(s)", result)
            rps[name].append(result.rps)
            cpu[name].append(f"{meter.ours:.2f}/{meter.machine_busy:.2f}")
    r1, r2 = median(rps["1"]), median(rps["2"])
    ratio = Result(
        "workers_2_vs_1",
        "case page, 2 workers ÷ 1 worker (req/s)",
        r2 / r1,
        ">= 1.5",
        f"{r2:.0f} vs {r1:.0f} req/s",
        {"rps_rounds": rps, "cpu_cores_server/machine": cpu, "wrk": f"-t1 -c{connections}"},
    )
    if ratio.met is False:
        ratio.why = (
            f"CPU: with 2 workers the server used {cpu['2'][-1].split('/')[0]} cores while the machine "
            f"was {cpu['2'][-1].split('/')[1]} of {2} cores busy (wrk, the bench and other users share "
            "the 2 cores); 1 worker used " + cpu["1"][-1].split("/")[0]
        )
    out.append(ratio)

    # Writes from both workers at once: each request opens a write transaction (a new draft).
    item = seed.choose_item(stack.info["citizen"].http, prereview=False)
    before = two.log_text().count("database is locked")
    headers = {**stack.info["citizen"].headers}
    result = run_wrk(
        two.url + "/api/v1/cases",
        seconds=SECONDS,
        connections=connections,
        headers=headers,
        method="POST",
        body=json.dumps({"item_code": item["code"]}),
        count_status=True,
    )
    locked = two.log_text().count("database is locked") - before
    failed = sum(n for status, n in result.statuses.items() if not status.startswith("2"))
    out.append(
        Result(
            "sqlite_locked_2_workers",
            "SQLite writes on 2 workers: 'database is locked'",
            float(locked),
            "== 0",
            f"{result.requests} drafts created in {result.seconds:.1f}s ({result.rps:.0f}/s), "
            f"statuses {result.statuses}, p99 {result.p99_ms:.0f} ms",
            {"wrk": result.as_dict(), "non_2xx": failed},
            why=f"{locked} 'database is locked' lines in the server log" if locked else "",
        )
    )
    if failed:
        out.append(
            Result(
                "writes_2_workers_non2xx",
                "SQLite writes on 2 workers: non-2xx answers",
                float(failed),
                "== 0",
                f"statuses {result.statuses}",
                why=_first_error(two.log_text()),
            )
        )
    stack.stop(two.name)


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "Error" in line or "error" in line:
            return line.strip()[:300]
    return "no error in the server log"
