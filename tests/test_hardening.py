"""Smaller holes of the security review, each closed and proven through HTTP."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portal.settings import Settings
from tests.conftest import PDF_BYTES, PG_URL, jpeg_bytes, pick_item, web_login
from tests.test_cases import new_case, upload


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite file only exists on SQLite")
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
