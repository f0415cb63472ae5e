"""Applying Alembic migrations from code, wherever the package is installed."""

from __future__ import annotations

import threading

from alembic.config import Config
from sqlalchemy import create_engine, inspect

from alembic import command
from portal.resources import MIGRATIONS_DIR

_lock = threading.Lock()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database to the newest revision (creates every table on an empty one).

    On PostgreSQL an advisory lock makes concurrent starts of several processes safe.
    """
    with _lock:
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7240412)")
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            engine.dispose()


def has_tables(url: str) -> bool:
    engine = create_engine(url)
    try:
        return "items" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
