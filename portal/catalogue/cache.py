"""The catalogue (items, halls, bundles) read once per process and database, kept current.

Almost every page reads an item and its halls, and the catalogue changes only when an
operator runs `portal catalogue load`. So each process holds an immutable snapshot of
the rows per database (per engine pool: tests run many apps, each on its own database)
and hands every caller its own detached `Item`/`Hall`/`Bundle` built from it in a few
microseconds: callers keep the ORM types they always had, and no ORM instance is ever
shared between sessions or threads.

Current within a second: every change to those rows rewrites the token of
`catalogue_version` in the same transaction (portal.catalogue.models), and a process
compares it with its snapshot's at most once a second (one one-row query, in the
session of the request that happens to be due), reloading the snapshot when it differs.
A change made in this process makes its caches compare at once. A session that changed
catalogue rows itself reads them from its own transaction until it ends, so nothing
uncommitted reaches the snapshot.

The JSON values (materials, fields, windows …) are shared by every copy, so they are
frozen: changing one in place raises TypeError instead of changing it for every request.
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.pool import Pool

from portal.catalogue import search
from portal.catalogue.models import (
    CHANGED_IN,
    Bundle,
    CatalogueVersion,
    Hall,
    Item,
    local_changes,
)

# How stale a process's catalogue may be after another process's load (docs/operations.md).
CHECK_SECONDS = 1.0

_REFUSE = "catalogue data is shared by every request: copy it (list(…), dict(…)) to change it"


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(_REFUSE)


class FrozenList(list[Any]):
    """A list of the snapshot: reads like a list (and JSON-encodes as one), never changes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> Any:  # pickled and copied as a plain, changeable list
        return (list, (list(self),))

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]


class FrozenDict(dict[str, Any]):
    """A dict of the snapshot: reads like a dict (and JSON-encodes as one), never changes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value


Row = dict[str, Any]  # attribute name -> frozen value
M = TypeVar("M", Item, Hall, Bundle)


def _read(session: Session, model: type[Any], *, by_code: bool = True) -> dict[str, Row]:
    """Every row of a catalogue table by code, as plain values (no ORM instance is loaded)."""
    mapper: Mapper[Any] = model.__mapper__
    attrs = [(prop.key, prop.columns[0]) for prop in mapper.column_attrs]
    query = select(*(column for _, column in attrs))
    if by_code:
        query = query.order_by(model.__table__.c.code)
    rows: dict[str, Row] = {}
    for row in session.execute(query):
        values = {key: freeze(value) for (key, _), value in zip(attrs, row, strict=True)}
        rows[values["code"]] = values
    return rows


def _copy(model: type[M], values: Row) -> M:
    """A detached instance of its own, as if loaded by a session that has closed."""
    instance: M = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    return instance


class Snapshot:
    """One reading of the catalogue. Immutable but for its search index, built on demand."""

    def __init__(self, session: Session, token: str | None) -> None:
        self.token = token
        # Halls in the table's own order, as the halls page always listed them.
        self.halls = _read(session, Hall, by_code=False)
        self.items = _read(session, Item)
        self.bundles = _read(session, Bundle)
        self._index: search.SearchIndex | None = None
        self._lock = threading.Lock()

    def item(self, code: str) -> Item | None:
        values = self.items.get(code)
        return _copy(Item, values) if values is not None else None

    def items_in(self, codes: Iterable[str]) -> list[Item]:
        return [_copy(Item, self.items[c]) for c in codes if c in self.items]

    def all_items(self) -> list[Item]:
        """Every item, retired ones too, by code."""
        return [_copy(Item, values) for values in self.items.values()]

    def active_items(self, domain: str = "") -> list[Item]:
        return [
            _copy(Item, v)
            for v in self.items.values()
            if v["active"] and (not domain or v["domain"] == domain)
        ]

    def hall(self, code: str) -> Hall | None:
        values = self.halls.get(code)
        return _copy(Hall, values) if values is not None else None

    def all_halls(self) -> list[Hall]:
        return [_copy(Hall, values) for values in self.halls.values()]

    def halls_in(self, codes: Iterable[str]) -> list[Hall]:
        return [_copy(Hall, self.halls[c]) for c in codes if c in self.halls]

    def bundle(self, code: str) -> Bundle | None:
        values = self.bundles.get(code)
        return _copy(Bundle, values) if values is not None else None

    def active_bundles(self) -> list[Bundle]:
        return [_copy(Bundle, v) for v in self.bundles.values() if v["active"]]

    def search_index(self) -> search.SearchIndex:
        with self._lock:
            if self._index is None:
                items = [
                    search.ItemDoc(
                        code=v["code"],
                        name=v["name"],
                        domain=v["domain"],
                        keywords=tuple(v["keywords"] or ()),
                        conditions=" ".join(v["conditions"] or ()),
                    )
                    for v in self.items.values()
                    if v["active"]
                ]
                bundles = [
                    search.BundleDoc(
                        code=v["code"],
                        name=v["name"],
                        description=v["description"],
                        items=tuple(v["items"]),
                    )
                    for v in self.bundles.values()
                    if v["active"]
                ]
                self._index = search.SearchIndex(items, bundles)
            return self._index


def read_token(session: Session) -> str | None:
    table = CatalogueVersion.__table__
    return session.execute(select(table.c.token).where(table.c.id == 1)).scalar()


class CatalogueCache:
    """The snapshot of one database in this process, and when it was last compared."""

    def __init__(self) -> None:
        self.check_seconds = CHECK_SECONDS
        self._snapshot: Snapshot | None = None
        self._checked_at = float("-inf")
        self._checked_changes = 0
        self._reload = threading.Lock()

    def current(self, session: Session) -> Snapshot:
        snapshot = self._snapshot
        changes = local_changes()
        if (
            snapshot is not None
            and changes == self._checked_changes
            and time.monotonic() - self._checked_at < self.check_seconds
        ):
            return snapshot
        checked_at = time.monotonic()
        token = read_token(session)
        if _changed_here(session):  # its autoflush just wrote catalogue rows
            return Snapshot(session, token=None)
        if snapshot is None or snapshot.token != token:
            with self._reload:  # one reload at a time
                if self._snapshot is not snapshot:
                    # Another request reloaded meanwhile: take its snapshot; should it be
                    # the older one, the next check (within check_seconds) reloads.
                    return self._snapshot or Snapshot(session, token)
                # Read after the token, in the same session: a load committed in between
                # leaves the newer rows under the older token, so the next check reloads.
                snapshot = Snapshot(session, token)
                self._snapshot = snapshot
        self._checked_at, self._checked_changes = checked_at, changes
        return snapshot


_caches: weakref.WeakKeyDictionary[Pool, CatalogueCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_of(session: Session) -> CatalogueCache:
    """The cache of the session's database: one per engine pool, i.e. per `Database`."""
    pool = session.get_bind().engine.pool
    with _caches_lock:
        cache = _caches.get(pool)
        if cache is None:
            cache = _caches[pool] = CatalogueCache()
        return cache


def _changed_here(session: Session) -> bool:
    """Whether the session's transaction has written catalogue rows."""
    changed_in = session.info.get(CHANGED_IN)
    if changed_in is None:
        return False
    if changed_in is session.get_transaction():
        return True
    del session.info[CHANGED_IN]  # that transaction has ended
    return False


def _pending_change(session: Session) -> bool:
    """Catalogue rows changed in the session but not yet flushed (a loader, a test)."""
    return any(
        isinstance(obj, Item | Hall | Bundle)
        for pending in (session.new, session.dirty, session.deleted)
        for obj in pending
    )


def snapshot(session: Session) -> Snapshot:
    """The catalogue as this session may see it: the process's snapshot, current within
    CHECK_SECONDS, or, in a transaction that changed catalogue rows, its own reading."""
    if _pending_change(session):
        session.flush()  # as a query would: the rows changed here are what it must see
    if _changed_here(session):
        return Snapshot(session, token=None)
    return cache_of(session).current(session)
