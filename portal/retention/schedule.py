"""The daily retention job as a scheduled task of its own, beside the outbox dispatcher.

It runs at most once a day per data dir; whether it is due is looked up every ten
minutes, from the mtime of a marker file, so restarts and several workers on one
data dir do not repeat it (several starting together is harmless: purge is
idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.concurrency import run_in_threadpool

from portal.db import Database
from portal.materials.storage import BlobStore
from portal.retention.service import purge
from portal.settings import Settings

log = logging.getLogger(__name__)
RETENTION_EVERY_SECONDS = 24 * 3600
RETENTION_CHECK_SECONDS = 600
RETENTION_MARKER = "retention-last-run"


class DailyRetention:
    def __init__(self, settings: Settings, db: Database, store: BlobStore) -> None:
        self.settings, self.db, self.store = settings, db, store
        self._stop = asyncio.Event()

    def due(self) -> bool:
        marker = self.settings.data_dir / RETENTION_MARKER
        try:
            return time.time() - marker.stat().st_mtime >= RETENTION_EVERY_SECONDS
        except FileNotFoundError:
            return True

    async def run_once(self) -> bool:
        """Purge if due; True when it ran."""
        if not self.due():
            return False
        try:
            await run_in_threadpool(purge, self.db, self.store, self.settings)
        except Exception:
            log.exception("retention job failed; trying again in %ds", RETENTION_CHECK_SECONDS)
            return False
        (self.settings.data_dir / RETENTION_MARKER).touch()
        return True

    async def run(self) -> None:
        while not self._stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=RETENTION_CHECK_SECONDS)

    def stop(self) -> None:
        self._stop.set()
