"""Settings, migrations and the `bureau` command."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bureau import cli
from bureau.app import create_app
from bureau.blobs import new_key
from bureau.settings import Settings, get_settings
from tests.bureau.bureau_testkit import make_settings


def test_db_upgrade_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUREAU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BUREAU_SECRET", "from-the-environment")
    get_settings.cache_clear()
    try:
        assert cli.main(["db", "upgrade"]) == 0
        assert cli.main(["db", "upgrade"]) == 0  # idempotent
        settings = get_settings()
        assert settings.secret == "from-the-environment"
        assert settings.callback_url == "http://127.0.0.1:8000/api/bureau/v1/events"
    finally:
        get_settings.cache_clear()
    tables = {
        row[0]
        for row in sqlite3.connect(tmp_path / "bureau.db").execute(
            "select name from sqlite_master where type = 'table'"
        )
    }
    assert {"cases", "outbox", "received_events", "bureau_alembic_version"} <= tables


def test_generated_staff_password_is_logged_once_and_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, staff_password="", dispatcher=False)
    with caplog.at_level(logging.WARNING, logger="bureau.app"):
        app = create_app(settings)
    match = re.search(r"generated password (\S+)", caplog.text)
    assert match, caplog.text
    with TestClient(app) as client:
        ok = client.get("/staff/api/v1/cases", auth=(settings.staff_user, match.group(1)))
        assert ok.status_code == 200
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bureau.app"):
        create_app(make_settings(tmp_path, staff_password="", dispatcher=False))
    assert "generated password" not in caplog.text


def test_session_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).prepare()
    second = Settings(data_dir=tmp_path).prepare()
    assert first.session_key and first.session_key == second.session_key
    assert first.database_url == f"sqlite:///{tmp_path / 'bureau.db'}"


def test_demo_secret_is_refused_outside_dev(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="BUREAU_SECRET"):
        Settings(data_dir=tmp_path, env="production").prepare()
    Settings(
        data_dir=tmp_path, env="production", secret="a-real-secret", blob_key=new_key()
    ).prepare()
