"""Smaller holes of the security review, each closed and proven through HTTP."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portal.settings import Settings
from tests.conftest import (
    PDF_BYTES,
    bearer,
    csrf_of,
    jpeg_bytes,
    pick_item,
    register,
    web_login,
)
from tests.factories import new_case, upload


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite  # the SQLite file only exists on SQLite
def test_the_data_dir_and_the_sqlite_file_are_private(tmp_path, template_db):
    data = tmp_path / "fresh" / "var"
    # The file a first start would create, from the migrated template (faster than migrating).
    settings = Settings(
        data_dir=data,
        secret_key="test-secret-key-" + "x" * 32,
        bureau_url="http://bureau.invalid",
        dispatcher=False,
    )
    settings.prepare()
    database = data / "portal.db"
    assert mode(data) == 0o700
    assert mode(database) == 0o600
    shutil.copyfile(template_db, database)  # copyfile keeps the target's mode
    from portal.app import create_app

    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/accounts", json={}).status_code == 422  # a write path
    assert mode(database) == 0o600
    for extra in (data / "portal.db-wal", data / "portal.db-shm"):
        if extra.exists():
            assert mode(extra) == 0o600, extra

    # A database file an older version left world-readable is made private at start.
    database.chmod(0o644)
    Settings(data_dir=data, secret_key=settings.secret_key).prepare()
    assert mode(database) == 0o600


def test_every_file_a_citizen_uploaded_is_never_cached(client, person, auth):
    """Thumbnails too: on a hall's shared computer the next citizen must not find them."""
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    code = item["materials"][0]["code"]
    photo = upload(client, auth, case_no, code, jpeg_bytes(), "证件.jpg", "image/jpeg")
    scan = upload(client, auth, case_no, code, PDF_BYTES, "扫描件.pdf", "application/pdf")
    web_login(client, person)
    documents = client.get("/api/v1/library", headers=auth).json()["documents"]
    answers = {
        "thumbnail": client.get(f"/cases/{case_no}/files/{photo.json()['id']}/thumb"),
        "photo": client.get(f"/cases/{case_no}/files/{photo.json()['id']}"),
        "scan": client.get(f"/cases/{case_no}/files/{scan.json()['id']}"),
        **{f"library {d['filename']}": client.get(f"/library/{d['id']}/file") for d in documents},
    }
    assert len(answers) >= 5, answers.keys()
    for what, answer in answers.items():
        assert answer.status_code == 200, what
        directives = {d.strip() for d in answer.headers["cache-control"].split(",")}
        assert "no-store" in directives and not any(d.startswith("max-age") for d in directives), (
            what,
            answer.headers["cache-control"],
        )


def test_12345_submissions_are_rationed_per_account_and_per_address(app, client, person, auth):
    from portal.consultations import limits
    from tests.factories import ask
    from tests.factories import consultation_events as submitted_events

    answers = [
        ask(client, auth, contact={"name": "李四", "phone": "13800000000"}) for _ in range(11)
    ]
    assert [a.status_code for a in answers] == [201] * 10 + [429]
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) > 3600
    assert "提交咨询投诉过于频繁" in refused.json()["error"]["message"]
    # A refused body is not counted: content errors are 422 as before, and never a 429 first.
    other = register(client, name="赵六")
    other_auth = bearer(client, other)
    assert [ask(client, other_auth, subject="").status_code for _ in range(12)] == [422] * 12
    assert ask(client, other_auth).status_code == 201
    # The page says it too, keeping what was typed, with the same status and header.
    web_login(client, person)
    form = client.get("/consultations/new")
    values = {"kind": "complaint", "subject": "第十一条投诉", "body": "这是第十一条投诉内容。"}
    page = client.post("/consultations", data={"csrf_token": csrf_of(form.text), **values})
    assert page.status_code == 429 and int(page.headers["Retry-After"]) > 0
    assert "提交咨询投诉过于频繁" in page.text and "第十一条投诉" in page.text
    assert len(submitted_events(app.state.db)) == 11

    # Many accounts from one address: the address's own limit holds them back.
    with TestClient(app, client=("198.51.100.30", 40000)) as host:
        sent = []
        for n in range(4):
            someone = bearer(host, register(host, name=f"批量{n}"))
            sent += [ask(host, someone).status_code for _ in range(limits.PER_ACCOUNT)]
    assert sent.count(201) == limits.PER_ADDRESS and sent[limits.PER_ADDRESS :] == [429] * 10


def test_x_forwarded_for_is_believed_only_from_configured_proxies(tmp_path, database_url):
    """`portal serve` as operators run it. Seen from /metrics, which answers loopback and
    refuses a public address: a forged X-Forwarded-For must not change who the client is."""
    import httpx

    from tests.live import BIN, ProcessServer, free_port

    forged = {"X-Forwarded-For": "114.114.114.114"}
    base = {
        "PORTAL_DATA_DIR": str(tmp_path / "data"),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": "xff-test-key-" + "f" * 32,
        "PORTAL_BUREAU_URL": "http://bureau.invalid",
        "PORTAL_BUREAU_SECRET": "xff-test-secret",
        "PORTAL_DISPATCHER": "off",
        "PORTAL_FORWARDED_ALLOW_IPS": "",
    }
    # Both configurations boot at once (each boot is seconds of imports).
    servers = []
    for trusted in ("", "127.0.0.1"):
        port = free_port()
        servers.append(
            ProcessServer(
                [str(BIN / "portal"), "serve", "--port", str(port)],
                {**base, "PORTAL_FORWARDED_ALLOW_IPS": trusted},
                port,
                tmp_path / f"portal-{port}.log",
            ).launch()
        )
    try:
        for server, expected in zip(servers, (200, 404), strict=True):
            server.wait_up()
            assert httpx.get(server.url + "/metrics").status_code == 200
            assert httpx.get(server.url + "/metrics", headers=forged).status_code == expected
    finally:
        for server in servers:
            server.stop()
