"""The composition root: what is wired to what, in one place, at start-up.

The app (portal.app.create_app) and the commands (portal.cli) call these; nothing is
registered by importing a module for its side effect.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from portal.cases import states
from portal.db import Database
from portal.exchange import inbound
from portal.exchange import schemas as exchange_schemas
from portal.exchange.dispatcher import Dispatcher
from portal.licences.schedule import LicenceReminders
from portal.materials.storage import open_store
from portal.notifications import hooks
from portal.notifications.sms import KIND as SMS_KIND
from portal.notifications.sms import sms_handler
from portal.originals import service as originals
from portal.originals.schemas import ReceivedIn
from portal.retention.schedule import DailyRetention
from portal.settings import Settings
from portal.verification.sms import KIND as CODE_KIND
from portal.verification.sms import code_handler


def install_hooks() -> None:
    """Transition hooks: the message centre and its SMS copies. Safe to call again."""
    states.after_transition(hooks.on_transition)
    install_bureau_events()


def install_bureau_events() -> None:
    """Bureau events other domains apply (docs/bureau-protocol.md refinements). Idempotent."""
    # 材料寄递: the bureau signed for the originals.
    inbound.HANDLERS.setdefault("originals.received", originals.apply_received)
    exchange_schemas.DATA_MODELS.setdefault("originals.received", ReceivedIn)


def build_dispatcher(
    settings: Settings,
    db: Database,
    *,
    worker_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **_: Any,
) -> Dispatcher:
    """The outbox dispatcher with every channel: bureau events and blobs, licences, SMS."""
    dispatcher = Dispatcher(settings, db, worker_id=worker_id, transport=transport)
    dispatcher.register(SMS_KIND, sms_handler(dispatcher))
    # Verification codes go out directly (portal.verification.sms); this is their fallback.
    dispatcher.register(CODE_KIND, code_handler(dispatcher))
    return dispatcher


class ScheduledJob(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


def build_retention(settings: Settings, db: Database) -> DailyRetention:
    """The daily retention job; it runs wherever the dispatcher runs."""
    return DailyRetention(settings, db, open_store(settings))


def build_scheduled_jobs(settings: Settings, db: Database) -> list[ScheduledJob]:
    """Work that runs on a clock wherever the dispatcher runs: retention, licence reminders."""
    return [build_retention(settings, db), LicenceReminders(db)]
