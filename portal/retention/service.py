"""Retention (PIPL art. 19, GB/T 35273 §6.1): personal data kept no longer than its purpose needs.

* A draft nobody touched for `draft_retention_days` (30) is deleted with its files:
  it was never sent, so nothing else needs it.
* A case withdrawn or not accepted (不予受理) `closed_files_retention_days` (90) ago
  loses its uploaded files; the case and its timeline stay (the record that it
  existed and how it ended), with an entry saying the files were removed.

A file (blob) is removed from disk only when nothing references it any more: no
other case's files, no library document (材料库, which the citizen manages),
no licence, no message still waiting to be sent. Files nothing has referenced
for a day (taken off a draft, deleted from the library, left behind by a
failed request) go the same way: kept for no purpose, they are kept too long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import KeptForm
from portal.bundles.models import BundleApplication
from portal.cases import states
from portal.cases.models import Case
from portal.clock import utcnow
from portal.db import Database
from portal.exchange.models import OutboxMessage
from portal.exchange.outbox import PENDING
from portal.library.models import LibraryDocument
from portal.materials.models import Blob, CaseFile
from portal.materials.storage import BlobStore
from portal.settings import Settings

log = logging.getLogger(__name__)
CLOSED_STATUSES = (states.WITHDRAWN, states.REJECTED)
# Unreferenced files younger than this stay: a request may be about to reference them.
ORPHAN_GRACE = timedelta(days=1)


@dataclass
class PurgeReport:
    drafts: list[str] = field(default_factory=list)  # case numbers of deleted drafts
    emptied: list[str] = field(default_factory=list)  # closed cases whose files were removed
    files: int = 0  # CaseFile rows removed
    blobs: list[str] = field(default_factory=list)  # blobs removed from disk
    strays: int = 0  # files on disk without a record, temp files of failed requests

    def lines(self) -> list[str]:
        return [
            f"删除草稿 {len(self.drafts)} 件 / drafts deleted: {' '.join(self.drafts) or '-'}",
            f"清除材料文件的已撤回、不予受理办件 {len(self.emptied)} 件 / closed cases emptied: "
            f"{' '.join(self.emptied) or '-'}",
            f"删除文件记录 {self.files} 条，磁盘文件 {len(self.blobs)} 个 / "
            f"file records {self.files}, stored files {len(self.blobs)}",
            f"清理无记录的残留文件 {self.strays} 个 / stray files {self.strays}",
        ]


def _referenced(session: Session, sha256: str, licences: set[str], outgoing: set[str]) -> bool:
    if sha256 in licences or sha256 in outgoing:
        return True
    in_cases = exists().where(CaseFile.sha256 == sha256)
    in_library = exists().where(LibraryDocument.sha256 == sha256)
    return bool(session.scalar(select(in_cases | in_library)))


class _Touched(Exception):
    """The file was touched by an upload within the grace period: its row stays too."""


def purge_expired(
    session: Session, store: BlobStore, *, settings: Settings, now: datetime | None = None
) -> PurgeReport:
    """Delete expired drafts and closed cases' files in `session`; never commits.

    A blob leaves the store inside the savepoint that deletes its row, so a file
    an upload touched meanwhile keeps its row as well (`BlobStore.remove`).
    """
    now = now or utcnow()
    report = PurgeReport()
    candidates: set[str] = set()

    draft_cutoff = now - timedelta(days=settings.draft_retention_days)
    drafts = list(
        session.scalars(
            select(Case)
            .where(Case.status == states.DRAFT, Case.updated_at < draft_cutoff)
            .order_by(Case.id)
        )
    )
    for case in drafts:
        candidates.update(
            session.scalars(select(CaseFile.sha256).where(CaseFile.case_id == case.id))
        )
        report.drafts.append(case.case_no)
    if drafts:
        ids = [c.id for c in drafts]
        bundle_ids = {c.bundle_application_id for c in drafts} - {None}
        session.execute(delete(CaseFile).where(CaseFile.case_id.in_(ids)))
        # Timeline, delivery choice, appointments, messages go with it (ON DELETE CASCADE).
        for case in drafts:
            session.delete(case)
        session.flush()
        # A draft 一件事 application left without any case is gone too.
        for app_id in bundle_ids:
            left = session.scalar(select(exists().where(Case.bundle_application_id == app_id)))
            application = session.get(BundleApplication, app_id)
            if not left and application is not None and application.status == "draft":
                session.delete(application)

    closed_cutoff = now - timedelta(days=settings.closed_files_retention_days)
    closed = session.scalars(
        select(Case)
        .where(
            Case.status.in_(CLOSED_STATUSES),
            Case.finished_at.is_not(None),
            Case.finished_at < closed_cutoff,
            exists().where(CaseFile.case_id == Case.id),
        )
        .order_by(Case.id)
    )
    for case in list(closed):
        files = list(session.scalars(select(CaseFile).where(CaseFile.case_id == case.id)))
        candidates.update(f.sha256 for f in files)
        for f in files:
            session.delete(f)
        report.files += len(files)
        report.emptied.append(case.case_no)
        states.record(
            session,
            case,
            type="files.purged",
            label="材料文件已按保存期限删除",
            detail=f"办件{states.STATUS_LABELS[case.status]}已满 "
            f"{settings.closed_files_retention_days} 天，删除上传的 {len(files)} 个材料文件。",
        )
    session.flush()

    # Files nothing references any more, whatever made them so.
    candidates.update(
        session.scalars(
            select(Blob.sha256).where(
                Blob.created_at < now - ORPHAN_GRACE,
                ~exists().where(CaseFile.sha256 == Blob.sha256),
                ~exists().where(LibraryDocument.sha256 == Blob.sha256),
            )
        )
    )

    removed: list[str] = []
    untouched_since = (now - ORPHAN_GRACE).timestamp()
    if candidates:
        issued: list[Any] = list(
            session.scalars(select(Case.licence).where(Case.licence.is_not(None)))
        )
        licences = {lic["sha256"] for lic in issued if isinstance(lic, dict) and lic.get("sha256")}
        pending: list[Any] = list(
            session.scalars(select(OutboxMessage.blobs).where(OutboxMessage.status == PENDING))
        )
        outgoing = {sha for blobs in pending for sha in blobs or []}
        for sha256 in sorted(candidates):
            if _referenced(session, sha256, licences, outgoing):
                continue
            try:
                # A row someone references right now (PostgreSQL) stays: skipped, not failed.
                with session.begin_nested():
                    session.execute(delete(Blob).where(Blob.sha256 == sha256))
                    # An upload of the same content may have found the file a moment
                    # ago and be about to reference it (it touched the file first).
                    if not store.remove(sha256, untouched_since=untouched_since):
                        raise _Touched
            except (IntegrityError, _Touched):
                continue
            removed.append(sha256)
    report.blobs = removed
    # Forms kept across a session timeout and sign-ins waiting for consent, past their time
    # (portal/accounts/kept_forms.py): minutes-long by design, never kept longer.
    session.execute(delete(KeptForm).where(KeptForm.expires_at < now))
    return report


def purge(
    db: Database, store: BlobStore, settings: Settings, now: datetime | None = None
) -> PurgeReport:
    """Run the retention rules in one transaction; the files leave disk inside it.

    Files are removed while the write transaction is still open: a blob whose row
    could not be deleted keeps its file, and one an upload touched within
    ORPHAN_GRACE keeps both (uploads put their file before their transaction, so
    they do not wait for this one). Should the commit fail, the rows stay and the
    next run tidies them.
    """
    now = now or utcnow()
    with db.session(write=True) as session, session.begin():
        report = purge_expired(session, store, settings=settings, now=now)
        report.strays = remove_strays(session, store, now=now)
    if report.drafts or report.emptied or report.blobs or report.strays:
        log.info(
            "retention: %d drafts deleted, %d closed cases emptied, %d files removed, %d strays",
            len(report.drafts),
            len(report.emptied),
            len(report.blobs),
            report.strays,
        )
    return report


def remove_strays(session: Session, store: BlobStore, *, now: datetime, batch: int = 500) -> int:
    """Stored files without a record and temp files, untouched for a day (crash leftovers)."""
    cutoff = (now - ORPHAN_GRACE).timestamp()
    count = store.clear_staging(older_than=cutoff)
    old = [sha for sha, touched in store.stored() if touched < cutoff]
    for start in range(0, len(old), batch):
        chunk = old[start : start + batch]
        known = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(chunk))))
        for sha256 in chunk:
            if sha256 not in known and store.remove(sha256, untouched_since=cutoff):
                count += 1
    return count
