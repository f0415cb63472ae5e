"""Search: the top-3 hit rate of tests/search_queries.json and the time per query, for the
portal's index against a bare substring match (every word inside name or code, as the
portal searched before), both over the bundled catalogue, in this process, in one run."""

from __future__ import annotations

import json
import statistics
import time

from bench.procs import ROOT
from bench.results import Result
from bench.stack import Stack

ROUNDS = 5  # each query is timed this many times; the median of each counts


def _bare(items, q: str) -> list[str]:
    words = q.lower().split()[:5]
    return [
        i.code for i in items if all(w in f"{i.name} {i.code}".lower() for w in words)
    ]  # order by code, like the old query


def _measure(search, queries) -> tuple[float, list[float]]:
    hits, times = 0, []
    for entry in queries:
        found: list[str] = []
        runs = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            found = search(entry["q"])
            runs.append(time.perf_counter() - t0)
        times.append(statistics.median(runs) * 1000)
        hits += bool(set(found[:3]) & set(entry["expect"]))
    return hits / len(queries), times


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(len(values) * 0.95) - 1)]


def run(stack: Stack | None, results: list[Result]) -> None:
    from portal.catalogue import search
    from portal.catalogue.service import read_catalogue_file

    catalogue = read_catalogue_file()
    queries = json.loads((ROOT / "tests" / "search_queries.json").read_text("utf-8"))["queries"]
    t0 = time.perf_counter()
    index = search.SearchIndex(
        [
            search.ItemDoc(i.code, i.name, i.domain, tuple(i.keywords), " ".join(i.conditions))
            for i in catalogue.items
        ],
        [
            search.BundleDoc(b.code, b.name, b.description, tuple(b.items))
            for b in catalogue.bundles
        ],
    )
    first_build = time.perf_counter() - t0  # loads jieba's dictionary and pypinyin's
    t0 = time.perf_counter()
    search.SearchIndex(list(index.items.values()), index.bundles)
    rebuild = time.perf_counter() - t0  # what a catalogue change costs a running process

    rate, times = _measure(lambda q: index.search(q).codes, queries)
    bare_rate, bare_times = _measure(lambda q: _bare(catalogue.items, q), queries)
    misses = [e["q"] for e in queries if not set(index.search(e["q"]).codes[:3]) & set(e["expect"])]
    figures = {
        "queries": len(queries),
        "hit_rate": rate,
        "bare_hit_rate": bare_rate,
        "missed": misses,
        "ms_per_query": {e["q"]: round(t, 3) for e, t in zip(queries, times, strict=True)},
        "bare_ms_per_query": {
            e["q"]: round(t, 4) for e, t in zip(queries, bare_times, strict=True)
        },
        "first_build_s": round(first_build, 2),
        "rebuild_s": round(rebuild, 3),
    }
    results.append(
        Result(
            key="search_hit_rate",
            label="search: top-3 hit rate of everyday queries",
            value=rate,
            goal=">= 0.95",
            raw=f"portal {rate:.1%} vs bare substring {bare_rate:.1%}, {len(queries)} queries",
            figures=figures,
            why="" if rate >= 0.95 else "missed: " + "、".join(misses),
        )
    )
    p50, p95 = statistics.median(times), _p95(times)
    bare50, bare95 = statistics.median(bare_times), _p95(bare_times)
    slowest = max(zip(times, (e["q"] for e in queries), strict=True))
    results.append(
        Result(
            key="search_latency",
            label="search: p95 ms per query (in process)",
            value=p95,
            goal="<= 20",
            raw=(
                f"p50 {p50:.2f} / p95 {p95:.2f} ms vs substring {bare50:.3f} / {bare95:.3f} ms "
                f"(×{p50 / max(bare50, 1e-6):.0f} at p50); index {first_build:.1f} s first, "
                f"{rebuild * 1000:.0f} ms rebuild"
            ),
            figures={"p50_ms": p50, "p95_ms": p95, "bare_p50_ms": bare50, "bare_p95_ms": bare95},
            why="" if p95 <= 20 else f"slowest query {slowest[1]!r}: {slowest[0]:.1f} ms",
        )
    )


if __name__ == "__main__":
    from bench.results import table

    out: list[Result] = []
    run(None, out)
    print(table(out))
