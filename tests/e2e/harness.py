"""The portal and the reference back office as real servers on loopback ports.

Both run as child processes (`portal serve`, `bureau serve`) with fresh data
dirs and a shared secret, so tests can kill, restart or starve either side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, make_phone, make_ric
from tests.live import BIN, ProcessServer, free_port

SECRET = "e2e-shared-secret"
STAFF = ("staff", "staff-pass-e2e")


class Bureau:
    """The staff JSON API of the reference back office."""

    def __init__(self, server: ProcessServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, auth=STAFF, timeout=30)

    def case(self, case_no: str) -> dict[str, Any]:
        response = self.http.get(f"/staff/api/v1/cases/{case_no}")
        response.raise_for_status()
        return response.json()

    def status(self, case_no: str) -> str | None:
        """The case's status at the bureau, or None while it has not arrived."""
        response = self.http.get(f"/staff/api/v1/cases/{case_no}")
        return response.json()["status"] if response.status_code == 200 else None

    def act(self, case_no: str, action: str, body: dict | None = None) -> dict[str, Any]:
        response = self.http.post(f"/staff/api/v1/cases/{case_no}/{action}", json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    def received(self, case_no: str | None = None) -> list[dict[str, Any]]:
        params = {"case_no": case_no} if case_no else {}
        return self.http.get("/staff/api/v1/received", params=params).json()["events"]


class Portal:
    """A citizen using the JSON API of the running portal."""

    def __init__(self, server: ProcessServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.headers: dict[str, str] = {}

    def register(self) -> dict[str, Any]:
        person = {
            "kind": "person",
            "name": "吴测试",
            "id_number": make_ric(),
            "phone": make_phone(),
            "password": PASSWORD,
        }
        assert self.http.post("/api/v1/accounts", json=person).status_code == 201
        token = self.http.post(
            "/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD}
        ).json()["token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        return person

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, headers=self.headers, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.http.post(path, headers=self.headers, **kw)

    def patch(self, path: str, **kw) -> httpx.Response:
        return self.http.patch(path, headers=self.headers, **kw)

    def case(self, case_no: str) -> dict[str, Any]:
        response = self.get(f"/api/v1/cases/{case_no}")
        response.raise_for_status()
        return response.json()


def wait_for(check: Callable[[], Any], seconds: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what} (last: {last!r})")


def portal_env(
    tmp: Path, database_url: str, bureau_url: str, public_url: str, **extra: str
) -> dict[str, str]:
    return {
        "PORTAL_DATA_DIR": str(tmp / "portal"),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": "e2e-secret-key-" + "k" * 32,
        "PORTAL_BUREAU_URL": bureau_url,
        "PORTAL_BUREAU_SECRET": SECRET,
        "PORTAL_PUBLIC_URL": public_url,
        "PORTAL_RETRY_FIRST_SECONDS": "0.2",
        "PORTAL_RETRY_MAX_SECONDS": "1",
        "PORTAL_HTTP_TIMEOUT_SECONDS": "3",
        **extra,
    }


def bureau_env(tmp: Path, portal_url: str, public_url: str, **extra: str) -> dict[str, str]:
    return {
        "BUREAU_DATA_DIR": str(tmp / "bureau"),
        "BUREAU_SECRET": SECRET,
        "BUREAU_PORTAL_URL": portal_url,
        "BUREAU_PUBLIC_URL": public_url,
        "BUREAU_STAFF_USER": STAFF[0],
        "BUREAU_STAFF_PASSWORD": STAFF[1],
        "BUREAU_RETRY_FIRST_SECONDS": "0.2",
        "BUREAU_RETRY_MAX_SECONDS": "1",
        **extra,
    }


class System:
    """Ports are fixed before either side starts, so each knows the other's URL."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.portal_port, self.bureau_port = free_port(), free_port()
        self.portal_url = f"http://127.0.0.1:{self.portal_port}"
        self.bureau_url = f"http://127.0.0.1:{self.bureau_port}"
        self.bureau_server: ProcessServer | None = None
        self.portal_server: ProcessServer | None = None

    def _bureau_server(self, **extra: str) -> ProcessServer:
        env = bureau_env(self.tmp, self.portal_url, self.bureau_url, **extra)
        self.bureau_server = ProcessServer(
            [str(BIN / "bureau"), "serve", "--port", str(self.bureau_port)],
            env,
            self.bureau_port,
            self.tmp / "bureau.log",
        )
        return self.bureau_server

    def _portal_server(self, **extra: str) -> ProcessServer:
        env = portal_env(self.tmp, self.database_url, self.bureau_url, self.portal_url, **extra)
        self.portal_server = ProcessServer(
            [str(BIN / "portal"), "serve", "--port", str(self.portal_port)],
            env,
            self.portal_port,
            self.tmp / "portal.log",
        )
        return self.portal_server

    def start_bureau(self, **extra: str) -> Bureau:
        return Bureau(self._bureau_server(**extra).start())

    def start_portal(self, **extra: str) -> Portal:
        return Portal(self._portal_server(**extra).start())

    def start_both(self, **portal_extra: str) -> tuple[Portal, Bureau]:
        """Both sides booting at once (each knows the other's port already)."""
        bureau = self._bureau_server().launch()
        portal = self._portal_server(**portal_extra).launch()
        return Portal(portal.wait_up()), Bureau(bureau.wait_up())

    def stop(self) -> None:
        for server in (self.portal_server, self.bureau_server):
            if server is not None:
                server.stop()


@pytest.fixture
def system(tmp_path, database_url):
    sys_ = System(tmp_path, database_url)
    yield sys_
    sys_.stop()


@pytest.fixture
def running(system):
    """Both sides up; returns (portal, bureau)."""
    return system.start_both()
