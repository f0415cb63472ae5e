"""Everything one bench run starts: the portal, the reference back office, the bare baselines."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import seed
from bench.procs import BIN, Proc, free_port

SECRET = "bench-shared-secret-0123456789"
STAFF = ("staff", "bench-staff-pass")
MAX_UPLOAD_MB = 256


def portal_env(data_dir: Path, port: int, bureau_url: str, **extra: str) -> dict[str, str]:
    return {
        "PORTAL_DATA_DIR": str(data_dir),
        "PORTAL_DATABASE_URL": f"sqlite:///{data_dir / 'portal.db'}",
        "PORTAL_SECRET_KEY": "bench-secret-key-" + "s" * 40,
        "PORTAL_BUREAU_URL": bureau_url,
        "PORTAL_BUREAU_SECRET": SECRET,
        "PORTAL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PORTAL_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "PORTAL_RETRY_FIRST_SECONDS": "0.2",
        "PORTAL_RETRY_MAX_SECONDS": "2",
        **extra,
    }


def bureau_env(data_dir: Path, portal_url: str, public_url: str, **extra: str) -> dict[str, str]:
    return {
        "BUREAU_DATA_DIR": str(data_dir),
        "BUREAU_SECRET": SECRET,
        "BUREAU_PORTAL_URL": portal_url,
        "BUREAU_PUBLIC_URL": public_url,
        "BUREAU_STAFF_USER": STAFF[0],
        "BUREAU_STAFF_PASSWORD": STAFF[1],
        "BUREAU_RETRY_FIRST_SECONDS": "0.2",
        "BUREAU_RETRY_MAX_SECONDS": "2",
        **extra,
    }


def uvicorn(app: str, port: int, *, factory: bool = False) -> list[str]:
    """A bare app served exactly as `portal serve` serves the portal (uvicorn's defaults)."""
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    return [*cmd, "--factory"] if factory else cmd


@dataclass
class Stack:
    root: Path
    logs: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Stack:
        root = Path(tempfile.mkdtemp(prefix="portal-bench-"))
        return cls(root=root, logs=root / "logs")

    # --- processes -------------------------------------------------------------------------
    def add(self, name: str, command: list[str], env: dict[str, str], port: int | None) -> Proc:
        proc = Proc(name, command, env, self.logs, port)
        self.procs[name] = proc
        return proc

    def start_core(self) -> None:
        """The back office and a one-worker portal on SQLite, as `make run` would start them."""
        portal_port, bureau_port = free_port(), free_port()
        self.portal_dir = self.root / "portal"
        self.portal_url = f"http://127.0.0.1:{portal_port}"
        self.bureau_url = f"http://127.0.0.1:{bureau_port}"
        self.database_url = f"sqlite:///{self.portal_dir / 'portal.db'}"
        self.portal_env = portal_env(self.portal_dir, portal_port, self.bureau_url)
        bureau = self.add(
            "bureau",
            [str(BIN / "bureau"), "serve", "--port", str(bureau_port)],
            bureau_env(self.root / "bureau", self.portal_url, self.bureau_url),
            bureau_port,
        )
        portal = self.add(
            "portal",
            [str(BIN / "portal"), "serve", "--port", str(portal_port), "--workers", "1"],
            self.portal_env,
            portal_port,
        )
        bureau.start()
        portal.start()
        self.bureau = seed.Bureau(self.bureau_url, STAFF)

    def start_portal_workers(self, workers: int) -> Proc:
        """Another `portal serve` on the same data dir and database, with N workers."""
        port = free_port()
        env = {**self.portal_env, "PORTAL_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        proc = self.add(
            f"portal-{workers}w",
            [str(BIN / "portal"), "serve", "--port", str(port), "--workers", str(workers)],
            env,
            port,
        )
        return proc.start()

    def start_baselines(self, context_file: Path) -> None:
        env = {**self.portal_env, "BENCH_CONTEXT": str(context_file)}
        bare_port, nodb_port = free_port(), free_port()
        self.add("bare-page", uvicorn("bench.apps.bare_page:app", bare_port), env, bare_port)
        # uvicorn as `portal serve` runs it; the app sets up the portal's own logging.
        self.add(
            "portal-nodb",
            uvicorn("bench.apps.portal_nodb:create", nodb_port, factory=True),
            {**env, "PORTAL_DISPATCHER": "off"},
            nodb_port,
        )
        self.procs["bare-page"].start()
        self.procs["portal-nodb"].start()

    def start_bare_uploads(self) -> None:
        tmp = self.root / "bare-tmp"
        tmp.mkdir(exist_ok=True)
        for name in ("bare-raw", "bare-readall"):
            port = free_port()
            self.add(
                name, uvicorn("bench.apps.bare_upload:app", port), {"BENCH_TMP": str(tmp)}, port
            ).start()

    def stop(self, name: str) -> None:
        if name in self.procs:
            self.procs[name].stop()

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
