"""The catalogue of licensing items (事项清单), halls and bundles, loaded from a data file."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, Text, event, insert, update
from sqlalchemy.orm import Mapped, Mapper, mapped_column, object_session

from portal.clock import utcnow
from portal.db import Base


class Hall(Base):
    __tablename__ = "halls"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200))
    hours: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    windows: Mapped[list[Any]] = mapped_column(default=list)
    postage: Mapped[str] = mapped_column(String(200), default="")  # 证照寄递: who pays


class Item(Base):
    """One item with every element of its implementation list (实施清单)."""

    __tablename__ = "items"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(16), index=True)
    category: Mapped[str] = mapped_column(String(50), default="行政许可")
    department: Mapped[str] = mapped_column(String(100))
    origin_department: Mapped[str] = mapped_column(String(100), default="")
    basis: Mapped[list[Any]] = mapped_column(default=list)
    conditions: Mapped[list[Any]] = mapped_column(default=list)
    materials: Mapped[list[Any]] = mapped_column(default=list)
    fields: Mapped[list[Any]] = mapped_column(default=list)
    steps: Mapped[list[Any]] = mapped_column(default=list)
    legal_days: Mapped[int]
    promised_days: Mapped[int]
    fee: Mapped[str] = mapped_column(String(500), default="不收费")
    visits: Mapped[int] = mapped_column(default=0)
    online: Mapped[bool] = mapped_column(default=True)
    prereview: Mapped[bool] = mapped_column(default=False)
    express: Mapped[bool] = mapped_column(default=False)
    commitment_text: Mapped[str | None] = mapped_column(Text)
    halls: Mapped[list[Any]] = mapped_column(default=list)
    licence_name: Mapped[str] = mapped_column(String(100), default="")
    licence_valid_years: Mapped[int | None]
    consult_phone: Mapped[str] = mapped_column(String(50), default="")
    sources: Mapped[list[Any]] = mapped_column(default=list)
    # What can be applied for about an issued licence: {"renewal": {"window": {"opens": 90,
    # "closes": 15, "unit": "working_days"}}, …} (portal.licences).
    applications: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Everyday words people search for this item with (餐饮, 饭店 …), from the catalogue.
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    # Lower-cased name + code, so search is one LIKE on every backend.
    search_text: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def material(self, code: str) -> dict[str, Any] | None:
        return next((m for m in self.materials if m["code"] == code), None)


class Bundle(Base):
    """一件事 / 套餐: several items applied for together."""

    __tablename__ = "bundles"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    items: Mapped[list[Any]] = mapped_column(default=list)
    sources: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)


class CatalogueVersion(Base):
    """One row whose token changes in the same transaction as any item, hall or bundle.

    Each process keeps the catalogue in memory (portal.catalogue.cache) and compares
    this token, one small query at most once a second, to know whether its copy is current.
    A token, not a counter: a load rolled back and another committed after it must not
    leave two different catalogues under the same number."""

    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    token: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


# How often this process changed catalogue rows (of any database): its caches compare the
# token again as soon as this moves, instead of waiting for their next check.
_local_changes = itertools.count(1)
_local = {"changes": 0}


def local_changes() -> int:
    return _local["changes"]


# session.info key: the transaction that changed catalogue rows. Until it ends, that
# session reads the catalogue from its own transaction, never from (or into) the cache.
CHANGED_IN = "catalogue_changed_in"


def _innermost(session: Any) -> Any:
    return session.get_nested_transaction() or session.get_transaction()


def _bump_version(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    """Change the version token with the rows, in the flush that writes them."""
    session = object_session(target)
    if session is not None:
        transaction = _innermost(session)
        if session.info.get("catalogue_bumped_in") is transaction:
            return  # once per (sub)transaction: a load flushes dozens of rows
        session.info["catalogue_bumped_in"] = transaction
        session.info[CHANGED_IN] = session.get_transaction()
    values = {"token": uuid.uuid4().hex, "changed_at": utcnow()}
    done = connection.execute(
        update(CatalogueVersion).where(CatalogueVersion.id == 1).values(**values)
    )
    if done.rowcount == 0:  # a schema made without the migration's row (create_all)
        connection.execute(insert(CatalogueVersion).values(id=1, **values))
    _local["changes"] = next(_local_changes)


for _model in (Hall, Item, Bundle):
    for _when in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _when, _bump_version)
