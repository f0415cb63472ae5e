"""Alembic environment of the back office; run through bureau.migrate, not the alembic CLI."""

from __future__ import annotations

from alembic import context
from bureau import models  # noqa: F401 - registers the tables on the metadata
from bureau.db import Base, make_engine

VERSION_TABLE = "bureau_alembic_version"

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                version_table=VERSION_TABLE,
                # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
                render_as_batch=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
