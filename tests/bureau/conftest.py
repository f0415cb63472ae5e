"""Fixtures for the reference back office: a migrated database per test, the app through
TestClient (lifespan on, so the dispatcher runs) and a stub portal for its callbacks.

SQLite by default: each test gets a copy of a file migrated once. PostgreSQL when
BUREAU_TEST_DATABASE_URL is set, or derived from PORTAL_TEST_DATABASE_URL (as CI sets it)
as a database of its own named `<name>_bureau` on the same server, because the portal's
tests truncate theirs; each test then starts from emptied tables.

Self-contained: nothing from portal/ or tests/conftest.py is used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from bureau import auth
from bureau.app import create_app
from bureau.migrate import upgrade
from tests.bureau.bureau_testkit import Bureau, StubPortal, make_settings


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its lightest: the real parameters cost ~0.3 s per hash on a small machine."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


def _postgres_url() -> str:
    explicit = os.environ.get("BUREAU_TEST_DATABASE_URL", "")
    if explicit:
        return explicit
    portal = os.environ.get("PORTAL_TEST_DATABASE_URL", "")
    if not portal:
        return ""
    url = make_url(portal)
    # Under pytest-xdist, one database per worker: tests truncate between them.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    name = f"{url.database}_bureau" + (f"_{worker}" if worker else "")
    return url.set(database=name).render_as_string(hide_password=False)


PG_URL = _postgres_url()


def _create_database(url: str) -> None:
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            exists = conn.scalar(
                text("select 1 from pg_database where datname = :name"),
                {"name": target.database},
            )
            if not exists:
                conn.execute(text(f'create database "{target.database}"'))
    finally:
        server.dispose()


@pytest.fixture(scope="session")
def bureau_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Migrated once per session; each test copies the file (faster than migrating again)."""
    if PG_URL:
        _create_database(PG_URL)
        upgrade(PG_URL)
        return None
    path = tmp_path_factory.mktemp("bureau-template") / "bureau.db"
    upgrade(f"sqlite:///{path}")
    return path


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = conn.scalars(
                text(
                    "select tablename from pg_tables where schemaname = current_schema() "
                    "and tablename <> 'bureau_alembic_version'"
                )
            ).all()
            names = ", ".join(f'"{name}"' for name in tables)
            conn.execute(text(f"truncate {names} restart identity cascade"))
    finally:
        engine.dispose()


@pytest.fixture
def make_bureau(tmp_path: Path, bureau_template_db: Path | None) -> Iterator[Callable[..., Bureau]]:
    """Build a running back office (optionally with other settings); all are closed at the end."""
    stack: list[TestClient] = []

    def build(**overrides: Any) -> Bureau:
        data_dir = tmp_path / f"bureau{len(stack)}"
        data_dir.mkdir()
        if bureau_template_db is None:
            _empty_postgres(PG_URL)
            overrides.setdefault("database_url", PG_URL)
        else:
            shutil.copy(bureau_template_db, data_dir / "bureau.db")
        settings = make_settings(data_dir, **overrides)
        portal = StubPortal()
        app = create_app(settings, transport=httpx.MockTransport(portal.handler))
        client = TestClient(app)
        client.__enter__()
        stack.append(client)
        return Bureau(client=client, portal=portal, settings=settings)

    yield build
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def bureau(make_bureau: Callable[..., Bureau]) -> Bureau:
    return make_bureau()
