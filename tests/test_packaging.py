"""`pip install .` must yield a working portal: resources travel inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from tests.live import ProcessServer, free_port

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_resources_and_serves_from_an_empty_directory(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(out.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "portal/templates/base.html",
        "portal/static/css/site.css",
        "portal/alembic/env.py",
        "portal/alembic/versions/0001_initial_schema.py",
        "portal/catalogue/data/catalogue.json",
        "bureau/cli.py",
        "idp/cli.py",
        "idp/templates/login.html",
    ):
        assert required in names, f"{required} missing from the wheel"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    env = {
        # Only the unpacked wheel (plus installed dependencies) is importable: not the checkout.
        "PYTHONPATH": str(site),
        "PYTHONSAFEPATH": "1",
        "PORTAL_DATA_DIR": str(empty / "var"),
        "PORTAL_DISPATCHER": "off",
    }
    server = ProcessServer(
        [
            sys.executable,
            "-c",
            "import sys; from portal.cli import main; sys.exit(main())",
            "serve",
            "--port",
            str(port),
        ],
        env,
        port,
        tmp_path / "serve.log",
    )
    server.cwd = empty
    try:
        server.start()
        items = httpx.get(server.url + "/api/v1/items").json()["items"]
        assert len(items) >= 30
        assert httpx.get(server.url + "/").status_code == 200
        assert httpx.get(server.url + "/static/css/site.css").status_code == 200
        probe = subprocess.run(
            [sys.executable, "-c", "import portal.resources as r; print(r.TEMPLATES_DIR)"],
            env={**os.environ, **env},
            cwd=empty,
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.strip().startswith(str(site))
    finally:
        server.stop()
