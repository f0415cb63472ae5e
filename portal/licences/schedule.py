"""Expiry reminders as a scheduled job beside the dispatcher (every worker may run it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool

from portal.db import Database
from portal.licences.service import send_reminders

log = logging.getLogger(__name__)
CHECK_SECONDS = 600  # a reminder is about a day; ten minutes late is on time


class LicenceReminders:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._stop = asyncio.Event()

    def run_once(self) -> list[tuple[str, str]]:
        with self.db.session(write=True) as session, session.begin():
            return send_reminders(session)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = await run_in_threadpool(self.run_once)
                # Every run, even an empty one: an operator (and a test) sees it ran.
                log.info("licence reminders checked: %d sent", len(sent))
            except Exception:
                log.exception("licence reminders failed; trying again in %ds", CHECK_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=CHECK_SECONDS)

    def stop(self) -> None:
        self._stop.set()
