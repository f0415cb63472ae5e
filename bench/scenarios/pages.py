"""Lighthouse (mobile, Debian's Chromium) on the start, item and case pages of the running portal."""

from __future__ import annotations

from pathlib import Path

from bench import lighthouse, seed
from bench.results import Result
from bench.stack import Stack


def run(stack: Stack, out: list[Result]) -> None:
    missing = lighthouse.available()
    if missing:
        out.append(Result("lighthouse", "Lighthouse", None, ">= 95", f"not run: {missing}"))
        return
    citizen = stack.info["citizen"]
    item = seed.choose_item(citizen.http, prereview=True)
    pages = {
        "start": (stack.portal_url + "/", None),
        "item": (f"{stack.portal_url}/items/{item['code']}", None),
        "case": (
            f"{stack.portal_url}/cases/{stack.info['case_no']}",
            {"Cookie": stack.info["cookie"]},
        ),
    }
    scores = lighthouse.best_of_two(pages)
    loadavg = Path("/proc/loadavg").read_text().split()[0]
    for score in scores.values():
        score["loadavg"] = loadavg
    perf = {n: s["performance"] for n, s in scores.items()}
    a11y = {n: s["accessibility"] for n, s in scores.items()}
    worst = min(perf, key=perf.get)
    performance = Result(
        "lighthouse_performance_min",
        "Lighthouse mobile performance (lowest of start/item/case)",
        float(perf[worst]),
        ">= 95",
        " ".join(f"{n} {v}" for n, v in perf.items()) + " (best of 2 when under 95)",
        {"pages": scores},
    )
    if performance.met is False:
        s = scores[worst]
        performance.why = (
            f"{worst}: FCP {s['fcp_ms']:.0f} ms, LCP {s['lcp_ms']:.0f} ms, TBT {s['tbt_ms']:.0f} ms, "
            f"CLS {s['cls']}, {s['total_bytes']:.0f} bytes; runs scored {s['runs']} with the "
            f"machine's load average at {s['loadavg']} on 2 cores (Lighthouse slows the CPU 4× "
            "on top of whatever else runs, so TBT grows with the load)"
        )
    out.append(performance)
    accessibility = Result(
        "lighthouse_accessibility_min",
        "Lighthouse accessibility (lowest of start/item/case)",
        float(min(a11y.values())),
        ">= 100",
        " ".join(f"{n} {v}" for n, v in a11y.items()),
    )
    if accessibility.met is False:
        accessibility.why = "; ".join(
            f"{n}: {', '.join(s['accessibility_failures'])}"
            for n, s in scores.items()
            if s["accessibility_failures"]
        )
    out.append(accessibility)
