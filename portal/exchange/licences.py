"""Keeping the electronic licence the bureau issued, once it is fetched and hash-checked."""

from __future__ import annotations

from sqlalchemy import select

from portal.cases.models import Case
from portal.db import Database
from portal.library.service import keep_licence
from portal.materials.service import ensure_blob_row, put_issued
from portal.materials.storage import BlobStore, BlobWriter


def store_licence(
    db: Database, store: BlobStore, *, case_no: str, sha256: str, content: bytes | BlobWriter
) -> None:
    """Store the licence file (encrypted, by hash) and mark the case's licence downloadable."""
    size, content_type = put_issued(store, sha256, content)
    with db.session(write=True) as session, session.begin():
        ensure_blob_row(session, sha256=sha256, size=size, content_type=content_type)
        query = select(Case).where(Case.case_no == case_no)
        if not db.is_sqlite:
            query = query.with_for_update()
        case = session.scalars(query).first()
        if case is not None and case.licence and case.licence.get("sha256") == sha256:
            case.licence = {**case.licence, "stored": True}
            session.flush()
            # 材料一套清: the licence joins its holder's library, to be reused later.
            keep_licence(session, case=case)
