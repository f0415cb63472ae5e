"""Retention: untouched drafts go after 30 days, files of withdrawn and rejected cases after 90,
a file leaves the disk only when nothing references it, and the dispatcher runs it daily."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from sqlalchemy import select, update

from portal.cases.models import Case
from portal.clock import utcnow
from portal.composition import build_retention
from portal.exchange.licences import store_licence
from portal.materials.models import Blob
from portal.retention.schedule import RETENTION_MARKER
from portal.retention.service import purge
from tests.conftest import PDF_BYTES, pick_item
from tests.factories import envelope, fill_everything, new_case, send, upload
from tests.kit import age, age_files, forget_in_library, portal_cli, sha


def pdf(tag: str) -> bytes:
    return PDF_BYTES + f"%{tag}".encode()


def age_blobs(db, days: int = 2) -> None:
    with db.session(write=True) as session, session.begin():
        session.execute(update(Blob).values(created_at=utcnow() - timedelta(days=days)))


def on_disk(app, content: bytes) -> bool:
    return app.state.store.exists(sha(content))


def draft_with(client, auth, item, content: bytes) -> str:
    case_no = new_case(client, auth, item)["case_no"]
    assert upload(client, auth, case_no, item["materials"][0]["code"], content).status_code == 201
    return case_no


def test_untouched_drafts_go_after_30_days_with_their_files(client, auth, app, db, settings):
    item = pick_item(client, prereview=True)
    gone = draft_with(client, auth, item, pdf("gone"))
    forget_in_library(client, auth, pdf("gone"))
    recent = draft_with(client, auth, item, pdf("recent"))
    in_library = draft_with(client, auth, item, pdf("library"))
    shared = draft_with(client, auth, item, pdf("shared"))
    live = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, live)
    assert (
        upload(client, auth, live, item["materials"][0]["code"], pdf("shared")).status_code == 201
    )
    assert client.post(f"/api/v1/cases/{live}/prereview", headers=auth).status_code == 202
    forget_in_library(client, auth, pdf("shared"))
    bundles = client.get("/api/v1/bundles").json()["bundles"]
    application = None
    if bundles:  # the bundled catalogue has 一件事 bundles; a trimmed test catalogue may not
        application = client.post(
            f"/api/v1/bundles/{bundles[0]['code']}/cases", json={"form": {}}, headers=auth
        ).json()
        for case in application["cases"]:
            age(db, case["case_no"], updated_days=31)
    for case_no in (gone, in_library, shared):
        age(db, case_no, updated_days=31)
    age(db, recent, updated_days=29)
    age(db, live, updated_days=200)  # old, but not a draft
    age_files(app)

    result = portal_cli(
        "purge",
        env={
            "PORTAL_DATA_DIR": str(settings.data_dir),
            "PORTAL_DATABASE_URL": settings.database_url,
        },
    )
    assert result.returncode == 0, result.stderr
    assert "草稿 30 天" in result.stdout
    for case_no in (gone, in_library, shared):
        assert case_no in result.stdout
    assert recent not in result.stdout and live not in result.stdout

    for case_no in (gone, in_library, shared):
        assert client.get(f"/api/v1/cases/{case_no}", headers=auth).status_code == 404
    assert client.get(f"/api/v1/cases/{recent}", headers=auth).json()["status"] == "draft"
    assert client.get(f"/api/v1/cases/{live}", headers=auth).json()["status"] == "prereview"
    assert not on_disk(app, pdf("gone"))
    with db.session() as session:
        assert session.get(Blob, sha(pdf("gone"))) is None
    assert on_disk(app, pdf("recent"))
    assert on_disk(app, pdf("library"))  # still in the citizen's library
    assert on_disk(app, pdf("shared"))  # still a file of a live case
    # A 一件事 application left without drafts is gone as well.
    if application is not None:
        got = client.get(f"/api/v1/bundle-applications/{application['id']}", headers=auth)
        assert got.status_code == 404

    # Nothing more to do the second time.
    again = purge(db, app.state.store, settings)
    assert again.drafts == [] and again.emptied == [] and again.blobs == []


def submitted_case(client, auth, item, tag: str) -> str:
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    assert upload(client, auth, case_no, item["materials"][0]["code"], pdf(tag)).status_code == 201
    endpoint = "prereview" if item["prereview"] else "submission"
    assert client.post(f"/api/v1/cases/{case_no}/{endpoint}", headers=auth).status_code == 202
    return case_no


def test_withdrawn_and_rejected_cases_lose_their_files_after_90_days(
    client, auth, app, db, settings
):
    with_prereview = pick_item(client, prereview=True)
    without = pick_item(client, prereview=False)
    withdrawn = submitted_case(client, auth, with_prereview, "withdrawn")
    assert client.post(f"/api/v1/cases/{withdrawn}/withdrawal", headers=auth).status_code == 200
    rejected = submitted_case(client, auth, without, "rejected")
    send(client, envelope(rejected, "case.rejected", {"reason": "不属于本机关职权范围"}))
    young = submitted_case(client, auth, with_prereview, "young")
    assert client.post(f"/api/v1/cases/{young}/withdrawal", headers=auth).status_code == 200
    denied = submitted_case(client, auth, without, "denied")
    send(client, envelope(denied, "case.accepted", {"acceptance_no": "SL-9"}))
    send(client, envelope(denied, "case.denied", {"reason": "不符合条件", "remedy": "复议"}))
    for tag in ("withdrawn", "rejected", "young", "denied"):
        forget_in_library(client, auth, pdf(tag))
    # The outbox has delivered everything: only case files and the library hold blobs.
    from portal.exchange.models import OutboxMessage

    with db.session(write=True) as session, session.begin():
        session.execute(update(OutboxMessage).values(status="delivered"))
    for case_no in (withdrawn, rejected, denied):
        age(db, case_no, finished_days=91)
    age(db, young, finished_days=89)
    age_files(app)
    before = {
        c: client.get(f"/api/v1/cases/{c}", headers=auth).json()
        for c in (withdrawn, rejected, young, denied)
    }

    report = purge(db, app.state.store, settings)
    assert sorted(report.emptied) == sorted([withdrawn, rejected])

    for case_no in (withdrawn, rejected):
        case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
        assert case["status"] == before[case_no]["status"]  # the case stays
        assert all(m["files"] == [] for m in case["materials"])
        entries = [e for e in case["timeline"] if e["type"] == "files.purged"]
        assert len(entries) == 1 and "保存期限" in entries[0]["label"]
        # ... with everything it had on its timeline before.
        assert [e for e in case["timeline"] if e not in entries] == before[case_no]["timeline"]
    assert not on_disk(app, pdf("withdrawn")) and not on_disk(app, pdf("rejected"))
    # The application form every case uploaded (fill_everything) is shared: it stays for
    # the cases that still hold it.
    assert on_disk(app, PDF_BYTES)
    for case_no in (young, denied):
        assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json() == before[case_no]
    assert on_disk(app, pdf("young")) and on_disk(app, pdf("denied"))

    again = purge(db, app.state.store, settings)
    assert again.emptied == []
    case = client.get(f"/api/v1/cases/{withdrawn}", headers=auth).json()
    assert [e["type"] for e in case["timeline"]].count("files.purged") == 1


def test_licences_and_files_still_to_be_sent_are_never_removed(client, auth, app, db, settings):
    item = pick_item(client, prereview=False)
    # A licence is referenced by its case alone once the citizen drops it from the library.
    approved = submitted_case(client, auth, item, "approved")
    send(client, envelope(approved, "case.accepted", {"acceptance_no": "SL-1"}))
    licence = PDF_BYTES + b"%the licence"
    data = {
        "decision_no": "D-1",
        "licence": {
            "name": "许可证",
            "number": "L-1",
            "valid_from": "2026-01-01",
            "filename": "licence.pdf",
            "content_type": "application/pdf",
            "sha256": sha(licence),
        },
    }
    assert send(client, envelope(approved, "case.approved", data)).status_code == 200
    store_licence(
        app.state.db, app.state.store, case_no=approved, sha256=sha(licence), content=licence
    )
    forget_in_library(client, auth, licence)
    # A withdrawal whose submission never reached the bureau: the file must still go out.
    pending = submitted_case(client, auth, item, "pending")
    assert client.post(f"/api/v1/cases/{pending}/withdrawal", headers=auth).status_code == 200
    forget_in_library(client, auth, pdf("pending"))
    age(db, pending, finished_days=120)
    age_blobs(db)
    age_files(app)

    report = purge(db, app.state.store, settings)
    assert report.emptied == [pending]
    assert on_disk(app, licence)
    assert client.get(f"/api/v1/cases/{approved}/licence", headers=auth).content == licence
    assert on_disk(app, pdf("pending"))


def test_unreferenced_and_stray_files_are_tidied_after_a_day(client, auth, app, db, settings):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    code = item["materials"][0]["code"]
    old_file = upload(client, auth, case_no, code, pdf("dropped")).json()
    assert (
        client.delete(
            f"/api/v1/cases/{case_no}/materials/{code}/files/{old_file['id']}", headers=auth
        ).status_code
        == 204
    )
    forget_in_library(client, auth, pdf("dropped"))
    age_blobs(db)
    age_files(app)
    fresh = upload(client, auth, case_no, code, pdf("fresh")).json()
    client.delete(f"/api/v1/cases/{case_no}/materials/{code}/files/{fresh['id']}", headers=auth)
    forget_in_library(client, auth, pdf("fresh"))
    store = app.state.store
    # Left behind by crashed requests: a stored file without a record, a temp file.
    stray_sha = store.put_bytes(pdf("stray"))
    new_stray_sha = store.put_bytes(pdf("new stray"))
    temp = store.tmp / "upload-deadbeef"
    temp.write_bytes(b"half an upload")
    day_ago = time.time() - 2 * 86_400
    for path in (store.path(stray_sha), temp):
        os.utime(path, (day_ago, day_ago))

    report = purge(db, store, settings)
    assert report.blobs == [sha(pdf("dropped"))]
    assert report.strays == 2
    assert not on_disk(app, pdf("dropped")) and not store.exists(stray_sha) and not temp.exists()
    assert on_disk(app, pdf("fresh"))  # a request may still be about to use it
    assert store.exists(new_stray_sha)


def run_retention(settings, db, seconds: float) -> None:
    """The scheduled job as the app and `portal worker` run it, for a while."""

    async def main():
        job = build_retention(settings, db)
        task = asyncio.create_task(job.run())
        await asyncio.sleep(seconds)
        job.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def drafts_left(db, numbers) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Case.case_no).where(Case.case_no.in_(numbers))))


def test_the_scheduled_job_purges_once_a_day(client, auth, db, settings):
    item = pick_item(client, prereview=True)
    first = new_case(client, auth, item)["case_no"]
    age(db, first, updated_days=40)
    marker = settings.data_dir / RETENTION_MARKER
    assert not marker.exists()
    run_retention(settings, db, 1.5)
    assert drafts_left(db, [first]) == set()
    assert marker.exists()

    # Within a day of the last run: a restarted dispatcher leaves it alone.
    second = new_case(client, auth, item)["case_no"]
    age(db, second, updated_days=40)
    run_retention(settings, db, 1.0)
    assert drafts_left(db, [second]) == {second}

    # A day later it runs again.
    yesterday = time.time() - 86_400 - 60
    os.utime(marker, (yesterday, yesterday))
    run_retention(settings, db, 1.5)
    assert drafts_left(db, [second]) == set()
