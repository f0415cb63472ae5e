"""The scale-out recipe of docs/deploy.md, run on loopback: nginx (Debian's package) in front
of two `portal serve --workers 2`, two `portal worker`, PostgreSQL and a shared data dir.

200 cases are filed through nginx, with their uploads, by many clients at once; the
reference back office must then hold each exactly once, with its files.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    PASSWORD,
    PDF_BYTES,
    make_phone,
    make_ric,
    need,
    valid_form,
)
from tests.e2e.harness import STAFF
from tests.live import BIN, ROOT, ProcessServer, free_port, wait_until, wait_until_up

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Filed 16 at a time through nginx onto four serve workers while two dispatchers send:
# enough to interleave every pair of processes many times over (200 cost twice the time
# in a suite where every minute counts).
CASES = 100
CITIZENS = 20
MAX_UPLOAD_MB = 2
SECRET = "scaleout-bureau-secret-" + "x" * 16


def nginx_site_from_the_docs() -> str:
    """The `nginx` block of docs/deploy.md: the very file an operator copies."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/deploy.md must hold exactly one nginx block"
    return blocks[0]


def nginx_conf(tmp: Path, port: int, upstreams: list[int]) -> Path:
    site = nginx_site_from_the_docs()
    servers = "\n".join(
        f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;" for p in upstreams
    )
    site, n = re.subn(
        r"(?m)^    server 10\.0\.0\.\d+:8000[^\n]*\n(?:    server 10[^\n]*\n)*",
        servers + "\n",
        site,
    )
    assert n == 1, "the upstream block of docs/deploy.md changed shape"
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("/var/log/nginx/portal.access.log", str(tmp / "access.log"))
    # The tested limit follows this test's PORTAL_MAX_UPLOAD_MB, as the docs say it must.
    site, n = re.subn(
        r"client_max_body_size \d+m;", f"client_max_body_size {MAX_UPLOAD_MB + 1}m;", site
    )
    assert n == 1
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""{user}daemon off;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{site}
}}
"""
    )
    return conf


class Topology:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.nginx_port = free_port()
        self.url = f"http://127.0.0.1:{self.nginx_port}"
        self.bureau_port = free_port()
        self.serve_ports = [free_port(), free_port()]
        key = base64.b64encode(os.urandom(32)).decode()
        # Secrets from the environment, the same in every process (docs/deploy.md).
        self.env = {
            "PORTAL_ENV": "production",
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_DATA_DIR": str(tmp / "shared-data"),
            "PORTAL_SECRET_KEY": "scaleout-secret-key-" + "k" * 40,
            "PORTAL_ENCRYPTION_KEYS": key,
            "PORTAL_BUREAU_URL": f"http://127.0.0.1:{self.bureau_port}",
            "PORTAL_BUREAU_SECRET": SECRET,
            "PORTAL_PUBLIC_URL": self.url,
            "PORTAL_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
            # Accounts are registered by the load itself: no SMS gateway to read codes from.
            "PORTAL_REGISTER_NEEDS_CODE": "false",
            "PORTAL_DISPATCHER": "off",
            "PORTAL_LOG_JSON": "true",
            "PORTAL_RETRY_FIRST_SECONDS": "0.2",
            "PORTAL_RETRY_MAX_SECONDS": "2",
            # nginx is the only proxy (docs/deploy.md): its X-Forwarded-For is believed.
            "PORTAL_FORWARDED_ALLOW_IPS": "127.0.0.1",
        }
        self.servers: list[ProcessServer] = []
        self.others: list[subprocess.Popen] = []

    def start(self) -> None:
        bureau_env = {
            "BUREAU_ENV": "production",
            "BUREAU_DATA_DIR": str(self.tmp / "bureau"),
            "BUREAU_SECRET": SECRET,
            "BUREAU_SESSION_KEY": "scaleout-bureau-session-" + "s" * 32,
            "BUREAU_BLOB_KEY": "c2NhbGVvdXQtYnVyZWF1LWJsb2Ita2V5LTMyLWJ5dGU=",  # 32 bytes
            "BUREAU_PORTAL_URL": self.url,  # callbacks come in through nginx too
            "BUREAU_PUBLIC_URL": f"http://127.0.0.1:{self.bureau_port}",
            "BUREAU_STAFF_USER": STAFF[0],
            "BUREAU_STAFF_PASSWORD": STAFF[1],
        }
        self.bureau = ProcessServer(
            [str(BIN / "bureau"), "serve", "--port", str(self.bureau_port)],
            bureau_env,
            self.bureau_port,
            self.tmp / "bureau.log",
        ).start()
        self.servers.append(self.bureau)
        # The rollout order of docs/deploy.md: migrate once, then the processes.
        env = {**os.environ, **self.env}
        subprocess.run(
            [str(BIN / "portal"), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        for n, port in enumerate(self.serve_ports):
            command = [str(BIN / "portal"), "serve", "--port", str(port), "--workers", "2"]
            self.servers.append(
                ProcessServer(command, self.env, port, self.tmp / f"serve-{n}.log").start()
            )
        for n in range(2):
            log = open(self.tmp / f"worker-{n}.log", "ab")  # noqa: SIM115 - child's lifetime
            self.others.append(
                subprocess.Popen(
                    [str(BIN / "portal"), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        conf = nginx_conf(self.tmp / "nginx", self.nginx_port, self.serve_ports)
        check = subprocess.run(
            ["nginx", "-t", "-c", str(conf), "-p", str(conf.parent)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self.nginx = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(conf.parent)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "nginx-stderr.log", "ab"),  # noqa: SIM115
        )
        self.others.append(self.nginx)
        wait_until_up(self.url + "/healthz", 30, self.nginx)

    def stop(self) -> None:
        for proc in self.others:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.others:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in reversed(self.servers):
            server.stop()


@pytest.fixture
def topology(tmp_path, database_url):
    need(bool(shutil.which("nginx")), "nginx is not installed (apt-get install nginx)")
    top = Topology(tmp_path, database_url)
    try:
        top.start()
        yield top
    finally:
        top.stop()


def citizen(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    person = {
        "kind": "person",
        "name": "钱扩容",
        "id_number": make_ric(),
        "phone": make_phone(),
        "password": PASSWORD,
    }
    assert client.post("/api/v1/accounts", json=person).status_code == 201
    token = client.post(
        "/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD}
    ).json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def file_case(client: httpx.Client, item: dict, n: int) -> str:
    """Draft, every required material uploaded (through nginx), formally submitted."""
    answer = client.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}
    )
    assert answer.status_code == 201, answer.text
    case_no = answer.json()["case_no"]
    for m in item["materials"]:
        if m["required"]:
            # Distinct, and big enough to be worth streaming, yet still a PDF that parses.
            content = PDF_BYTES + f"%{case_no}-{m['code']}-{n}-{os.urandom(1024).hex()}\n".encode()
            answer = client.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("扫描件.pdf", content, "application/pdf")},
            )
            assert answer.status_code == 201, answer.text
    answer = client.post(f"/api/v1/cases/{case_no}/submission")
    assert answer.status_code == 202, answer.text
    return case_no


def test_two_serve_processes_and_two_workers_behind_nginx_lose_and_duplicate_nothing(topology):
    http = httpx.Client(base_url=topology.url, timeout=30)
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert re.fullmatch(r"[0-9a-f]{32}", ready.headers["x-request-id"])  # nginx's $request_id
    assert http.get("/metrics").status_code == 404  # never through the edge

    item = next(
        http.get(f"/api/v1/items/{s['code']}").json()
        for s in http.get("/api/v1/items").json()["items"]
        if s["online"] and not s["prereview"]
    )
    # A file over PORTAL_MAX_UPLOAD_MB gets through nginx to the portal's own 中文 413.
    clients = [citizen(topology.url) for _ in range(CITIZENS)]
    draft = clients[0].post("/api/v1/cases", json={"item_code": item["code"]}).json()["case_no"]
    code = next(m["code"] for m in item["materials"] if m["required"])
    big = PDF_BYTES + b"0" * int((MAX_UPLOAD_MB + 0.5) * 1024 * 1024)
    too_big = clients[0].post(
        f"/api/v1/cases/{draft}/materials/{code}/files",
        files={"file": ("big.pdf", big, "application/pdf")},
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"

    jobs = [(clients[n % CITIZENS], n) for n in range(CASES)]
    with ThreadPoolExecutor(16) as pool:
        filed = list(pool.map(lambda job: file_case(job[0], item, job[1]), jobs))
    assert len(set(filed)) == CASES, "two cases got the same number"

    bureau = httpx.Client(base_url=topology.bureau.url, auth=STAFF, timeout=30)

    def submitted() -> list[dict]:
        events = bureau.get("/staff/api/v1/received").json()["events"]
        return [e for e in events if e["type"] == "case.submitted"]

    wait_until(lambda: len(submitted()) >= CASES, 60, f"{CASES} cases at the bureau", poll=0.5)
    events = submitted()
    at_bureau = [e["case_no"] for e in events]
    assert sorted(set(at_bureau)) == sorted(filed), (
        f"lost: {sorted(set(filed) - set(at_bureau))[:10]}"
    )
    assert len(at_bureau) == CASES, "a case reached the bureau more than once"
    # The bureau holds every case with its files (it refuses an event whose files it lacks).
    for case_no in filed[:: CASES // 10]:
        case = bureau.get(f"/staff/api/v1/cases/{case_no}").json()
        assert case["status"] == "submitted"
        assert all(m["files"] for m in case["materials"] if m["code"] in {code})

    # Both serve processes took cases; each one's counts cover both of its workers.
    for port in topology.serve_ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        created = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("portal_http_requests_total{")
            and 'route="/api/v1/cases"' in line
            and 'method="POST"' in line
            and 'status="201"' in line
        )
        assert created > 0, f"serve process on {port} filed no case"
        assert "portal_outbox_pending" in text
    # The outbox is empty again and nothing was parked.
    text = httpx.get(f"http://127.0.0.1:{topology.serve_ports[0]}/metrics").text
    assert re.search(r"^portal_outbox_dead 0\.0$", text, re.M), text
