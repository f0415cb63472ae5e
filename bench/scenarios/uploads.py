"""Uploads: peak RSS growth while streaming 200 MB (and 4 at once), the read-all control,
and throughput against raw `request.stream()` to disk."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from bench import seed
from bench.load import Multipart, RssSampler, make_pdf, median, upload
from bench.results import Cpu, Result
from bench.stack import Stack

MB = 1024 * 1024
SIZE = 200 * MB
ROUNDS = 3


def run(stack: Stack, out: list[Result]) -> None:
    stack.start_bare_uploads()
    files = stack.root / "files"
    files.mkdir(exist_ok=True)
    started = time.monotonic()
    big = make_pdf(files / "big.pdf", SIZE, seed=1)
    four = [make_pdf(files / f"four-{i}.pdf", SIZE, seed=10 + i) for i in range(4)]
    print(f"  made 5 files of 200 MB in {time.monotonic() - started:.1f}s")

    citizen = seed.Citizen(stack.portal_url)
    item = seed.choose_item(citizen.http, prereview=False)
    portal = stack.procs["portal"]
    raw, readall = stack.procs["bare-raw"], stack.procs["bare-readall"]

    def portal_upload(path: Path) -> tuple[int, float]:
        case_no = seed.draft(citizen, item)
        return upload(
            stack.portal_url + seed.upload_path(case_no, item), Multipart(path), citizen.headers
        )

    # Memory: one 200 MB upload into the portal, and the control that reads it all.
    with RssSampler(portal.pid) as one:
        status, _ = portal_upload(big)
    assert status == 201, status
    with RssSampler(readall.pid) as control:
        status, _ = upload(readall.url + "/readall", Multipart(big))
    assert status == 201, status
    with RssSampler(portal.pid) as parallel, concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = [s for s, _ in pool.map(portal_upload, four)]
    assert statuses == [201] * 4, statuses

    growth = one.growth_bytes / SIZE
    result = Result(
        "upload_rss_per_size",
        "peak RSS growth ÷ file size, one 200 MB upload",
        growth,
        "<= 0.05",
        f"+{one.growth_bytes / MB:.1f} MB for 200 MB; control (await file.read()) "
        f"+{control.growth_bytes / MB:.0f} MB = {control.growth_bytes / SIZE:.2f}× size",
        {
            "portal_growth_bytes": one.growth_bytes,
            "control_growth_bytes": control.growth_bytes,
            "samples": one.samples,
            "vmhwm_reset": one.hwm_reset,
        },
    )
    if control.growth_bytes < 0.8 * SIZE:
        result.value = None
        result.why = "the control did not show the file in memory: the RSS measurement is blind"
    out.append(result)
    out.append(
        Result(
            "upload_rss_control",
            "control: await file.read() growth ÷ size",
            control.growth_bytes / SIZE,
            ">= 0.8",
            "proves the RSS measurement sees memory",
            {"control_growth_bytes": control.growth_bytes},
        )
    )
    out.append(
        Result(
            "upload_rss_4_parallel_mb",
            "peak RSS growth, 4 × 200 MB uploads at once (MB)",
            parallel.growth_bytes / MB,
            "<= 25",
            f"+{parallel.growth_bytes / MB:.1f} MB for 800 MB in flight",
            {"growth_bytes": parallel.growth_bytes},
        )
    )

    # Throughput: the same multipart body to the portal and to raw request.stream() → disk.
    portal_s: list[float] = []
    raw_s: list[float] = []
    cpu_portal: list[float] = []
    cpu_raw: list[float] = []
    for _ in range(ROUNDS):
        with Cpu([raw.pid]) as meter:
            status, seconds = upload(raw.url + "/raw", Multipart(big))
        assert status == 201, status
        raw_s.append(seconds)
        cpu_raw.append(meter.ours)
        with Cpu([portal.pid]) as meter:
            status, seconds = portal_upload(big)
        assert status == 201, status
        portal_s.append(seconds)
        cpu_portal.append(meter.ours)
    p, r = SIZE / MB / median(portal_s), SIZE / MB / median(raw_s)
    throughput = Result(
        "upload_throughput_vs_raw",
        "upload MB/s (multipart, SHA-256, AES-GCM, disk) ÷ raw stream to disk",
        p / r,
        ">= 0.7",
        f"{p:.0f} vs {r:.0f} MB/s (200 MB, median of {ROUNDS})",
        {
            "portal_seconds": portal_s,
            "raw_seconds": raw_s,
            "portal_cores": cpu_portal,
            "raw_cores": cpu_raw,
        },
    )
    if throughput.met is False:
        parts = components(big, stack.root / "files")
        throughput.figures["in_process_mb_per_s"] = parts
        slowest = sorted(
            (k for k in parts if k not in ("receive path (all)", "disk write")), key=parts.get
        )
        throughput.why = (
            f"CPU-bound: the portal used {median(cpu_portal):.2f} cores during its uploads "
            f"(raw: {median(cpu_raw):.2f}). In-process on the same bytes, MB/s of each step: "
            + ", ".join(f"{k} {parts[k]:.0f}" for k in slowest)
            + f"; the whole receive path {parts['receive path (all)']:.0f}, "
            f"a plain disk write {parts['disk write']:.0f}"
        )
    out.append(throughput)
    for path in [big, *four]:
        path.unlink(missing_ok=True)
    stack.stop("bare-raw")
    stack.stop("bare-readall")


def components(path: Path, tmp: Path) -> dict[str, float]:
    """MB/s of each step of the portal's receive path, in this process, on the same body."""
    import hashlib
    import os

    from python_multipart.multipart import MultipartParser

    from portal.materials.crypto import Encryptor, KeyRing, new_key_b64
    from portal.materials.sniff import ContentScanner
    from portal.materials.storage import LocalBlobStore
    from portal.materials.upload import _Receiver

    body = Multipart(path)
    ring = KeyRing.from_setting(new_key_b64())
    sink = tmp / "components.out"

    def timed(step) -> float:
        started = time.perf_counter()
        step()
        return body.length / MB / (time.perf_counter() - started)

    def parser_only() -> None:
        noop = {name: (lambda *a: None) for name in ("on_part_data", "on_header_value")}
        parser = MultipartParser(body.boundary.encode(), noop)
        for chunk in body.chunks():
            parser.write(chunk)
        parser.finalize()

    def sha_only() -> None:
        digest = hashlib.sha256()
        for chunk in body.chunks():
            digest.update(chunk)

    def aes_only() -> None:
        with open(sink, "wb") as fh:
            enc = Encryptor(ring, fh)
            for chunk in body.chunks():
                enc.write(chunk)
            enc.close()

    def scanner_only() -> None:
        scanner = ContentScanner()
        for chunk in body.chunks():
            scanner.feed(chunk)

    def disk_only() -> None:
        with open(sink, "wb") as fh:
            for chunk in body.chunks():
                fh.write(chunk)

    def whole() -> None:
        store = LocalBlobStore(tmp / "components-store", ring)
        receiver = _Receiver(store, SIZE + MB, None)
        callbacks = {
            name: getattr(receiver, name)
            for name in (
                "on_part_begin",
                "on_part_data",
                "on_part_end",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
            )
        }
        parser = MultipartParser(body.boundary.encode(), callbacks)
        for chunk in body.chunks():
            parser.write(chunk)
        parser.finalize()
        assert receiver.writer is not None
        receiver.writer.close()
        receiver.writer.discard()

    result = {
        "multipart parser": timed(parser_only),
        "SHA-256": timed(sha_only),
        "AES-GCM to disk": timed(aes_only),
        "content scanner": timed(scanner_only),
        "disk write": timed(disk_only),
        "receive path (all)": timed(whole),
    }
    os.unlink(sink)
    return {k: round(v, 1) for k, v in result.items()}
