"""The `portal` command (docs/operations.md, "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from portal.settings import get_settings

log = logging.getLogger("portal")


def _settings():
    from portal.logs import configure_logging

    settings = get_settings()
    configure_logging(json_lines=settings.log_json)
    return settings


def prepare_database(settings) -> None:
    """Migrate, then load the bundled catalogue into an empty database."""
    from portal import migrations
    from portal.catalogue.service import catalogue_is_empty, load_catalogue, read_catalogue_file
    from portal.db import Database

    migrations.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session(write=True) as session, session.begin():
            if catalogue_is_empty(session):
                report = load_catalogue(session, catalogue=read_catalogue_file())
                log.info("loaded the bundled catalogue: %s", report.lines()[0])
    finally:
        db.dispose()


def serve_app():
    """The app factory uvicorn calls in each worker process.

    With `--workers N` the workers are fresh processes that never ran `_settings()`,
    so logging (JSON lines, the request id, redaction) is set up here, in each.
    """
    from portal.app import create_app

    return create_app(_settings())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from portal.metrics import prepare_multiprocess_dir

    settings = _settings()
    # Before any worker starts: their request counts meet in this directory (docs/operations.md).
    prepare_multiprocess_dir(settings.data_dir, args.port)
    prepare_database(settings)
    url = f"http://{args.host}:{args.port}"
    print(f"门户已启动 / portal running at {url}  (public URL {settings.public_url})", flush=True)
    proxies = trusted_proxies(args.forwarded_allow_ips, settings.forwarded_allow_ips)
    uvicorn.run(
        "portal.cli:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # X-Forwarded-For decides the client address every throttle counts by: believed
        # only from the proxies named, never by default (not even from loopback, where any
        # local process could forge it).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Longer than the proxy's upstream keepalive_timeout (4 s in docs/deploy.md): the
        # proxy, not the portal, closes an idle connection, so no request meets a closing one.
        timeout_keep_alive=5,
    )
    return 0


def trusted_proxies(flag: str | None, setting: str) -> str:
    """The proxies whose X-Forwarded-* is believed: the flag, else PORTAL_FORWARDED_ALLOW_IPS."""
    chosen = setting if flag is None else flag
    return ",".join(part.strip() for part in chosen.split(",") if part.strip())


def cmd_worker(args: argparse.Namespace) -> int:
    from portal.composition import build_dispatcher, build_scheduled_jobs, install_hooks
    from portal.db import Database

    settings = _settings()
    prepare_database(settings)
    install_hooks()
    db = Database(settings.database_url)
    dispatcher = build_dispatcher(settings, db)

    jobs = build_scheduled_jobs(settings, db)

    def stop() -> None:
        dispatcher.stop()
        for job in jobs:
            job.stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(dispatcher.run(), *(job.run() for job in jobs))

    print(f"outbox worker {dispatcher.worker_id} sending to {settings.bureau_url}", flush=True)
    asyncio.run(main())
    db.dispose()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from portal import migrations

    settings = _settings()
    migrations.upgrade(settings.database_url)
    print("数据库已是最新版本 / database is at the newest revision")
    return 0


def cmd_catalogue_load(args: argparse.Namespace) -> int:
    from portal import migrations
    from portal.catalogue.cache import CHECK_SECONDS
    from portal.catalogue.service import load_catalogue, read_catalogue_file
    from portal.db import Database
    from portal.resources import CATALOGUE_FILE

    settings = _settings()
    migrations.upgrade(settings.database_url)
    path = Path(args.file) if args.file else CATALOGUE_FILE
    try:
        catalogue = read_catalogue_file(path)
    except ValueError as exc:
        print(f"无法读取事项清单文件：{exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        with db.session(write=True) as session, session.begin():
            report = load_catalogue(session, catalogue=catalogue)
    finally:
        db.dispose()
    print("\n".join(report.lines()))
    # Each process keeps the catalogue in memory and compares its version once a second.
    print(f"运行中的门户进程将在 {CHECK_SECONDS:g} 秒内采用新的事项清单。")
    return 0


def cmd_calendar_load(args: argparse.Namespace) -> int:
    from portal import migrations
    from portal.calendar.rules import CalendarFileError, read_file
    from portal.calendar.service import load_years
    from portal.db import Database

    settings = _settings()
    path = Path(args.file)
    try:
        years = read_file(path)
    except CalendarFileError as exc:
        print(f"无法载入节假日安排文件：{exc}", file=sys.stderr)
        return 2
    migrations.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session(write=True) as session, session.begin():
            report = load_years(session, years=years, source=path.name)
    finally:
        db.dispose()
    print("\n".join(report.lines()))
    print("运行中的门户进程将在 1 分钟内采用新的安排。")
    return 0


def cmd_calendar_show(args: argparse.Namespace) -> int:
    from portal import migrations
    from portal.calendar.service import refresh, show_lines
    from portal.db import Database

    if not 2004 <= args.year <= 2100:
        print("年份应在 2004–2100 之间", file=sys.stderr)
        return 2
    settings = _settings()
    migrations.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        refresh(db)
    finally:
        db.dispose()
    print("\n".join(show_lines(args.year)))
    return 0


def cmd_licences_reminders(args: argparse.Namespace) -> int:
    from portal.clock import format_cst
    from portal.db import Database
    from portal.licences.service import reminders_sent

    settings = _settings()
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            rows = reminders_sent(session)
    finally:
        db.dispose()
    kinds = {"window": "进入延续申请期", "30_days": "到期前 30 天", "expired": "已到期"}
    print(f"已发送的证照到期提醒（最近 {len(rows)} 条）：")
    for number, phone, kind, at in rows:
        print(f"  {format_cst(at)}  {number}  {phone}  {kinds.get(kind, kind)}")
    return 0


def cmd_outbox_list(args: argparse.Namespace) -> int:
    from portal.db import Database
    from portal.exchange.admin import list_messages

    settings = _settings()
    db = Database(settings.database_url)
    try:
        rows = list_messages(db, dead=args.dead)
    finally:
        db.dispose()
    if not rows:
        print("没有" + ("已搁置" if args.dead else "待发送") + "的消息 / none")
        return 0
    print(
        f"{'ID':>8}  {'type':24} {'case_no':18} {'attempts':>8}  {'next attempt (CST)':19}  last error"
    )
    for row in rows:
        print(
            f"{row['id']:>8}  {row['type']:24} {row['case_no'] or '-':18} {row['attempts']:>8}  "
            f"{row['next_attempt']:19}  {row['last_error']}"
        )
    return 0


def cmd_outbox_show(args: argparse.Namespace) -> int:
    from portal.db import Database
    from portal.exchange.admin import show_message

    settings = _settings()
    db = Database(settings.database_url)
    try:
        lines = show_message(db, args.id)
    finally:
        db.dispose()
    if lines is None:
        print(f"没有编号为 {args.id} 的消息", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def cmd_outbox_requeue(args: argparse.Namespace) -> int:
    from portal.db import Database
    from portal.exchange.admin import requeue

    settings = _settings()
    db = Database(settings.database_url)
    try:
        done, skipped = requeue(db, args.ids)
    finally:
        db.dispose()
    print(f"已重新排队 {len(done)} 条：{' '.join(map(str, done)) or '-'}")
    if skipped:
        print(f"跳过 {len(skipped)} 条（不存在或不是已搁置状态）：{' '.join(map(str, skipped))}")
    return 0 if not skipped else 1


def cmd_purge(args: argparse.Namespace) -> int:
    from portal.db import Database
    from portal.materials.storage import open_store
    from portal.retention.service import purge

    settings = _settings()
    db = Database(settings.database_url)
    try:
        report = purge(db, open_store(settings), settings)
    finally:
        db.dispose()
    print(
        f"保存期限：草稿 {settings.draft_retention_days} 天，"
        f"已撤回/不予受理办件的材料 {settings.closed_files_retention_days} 天"
    )
    print("\n".join(report.lines()))
    return 0


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from portal.materials.crypto import new_key_b64

    print(new_key_b64())
    return 0


def cmd_keys_reencrypt(args: argparse.Namespace) -> int:
    from portal.materials.storage import open_store

    settings = _settings()
    report = open_store(settings).reencrypt_all()
    print(f"已用最新密钥重新加密 {report.rewritten} 个文件 / re-encrypted: {report.rewritten}")
    print(f"已是最新密钥 {report.current} 个 / already under the newest key: {report.current}")
    for path, why in report.failed:
        print(f"无法处理 / failed: {path}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portal", description="行政审批局网上办事大厅 citizen portal"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the portal (with the outbox dispatcher unless PORTAL_DISPATCHER=off)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (uvicorn)")
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxy addresses trusted for X-Forwarded-* (default PORTAL_FORWARDED_ALLOW_IPS: none)",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the outbox dispatcher alone")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    catalogue = sub.add_parser("catalogue", help="the catalogue of items")
    cat_sub = catalogue.add_subparsers(dest="catalogue_command", required=True)
    load = cat_sub.add_parser("load", help="load or update items from a catalogue file")
    load.add_argument(
        "file", nargs="?", help="a file in the bundled format (default: the bundled catalogue)"
    )
    load.set_defaults(func=cmd_catalogue_load)

    calendar = sub.add_parser("calendar", help="the official working-day calendar")
    cal_sub = calendar.add_subparsers(dest="calendar_command", required=True)
    cal_load = cal_sub.add_parser(
        "load", help="load a year's State Council holiday notice and recompute provisional dates"
    )
    cal_load.add_argument("file")
    cal_load.set_defaults(func=cmd_calendar_load)
    cal_show = cal_sub.add_parser("show", help="print a year's holidays, official or provisional")
    cal_show.add_argument("year", type=int)
    cal_show.set_defaults(func=cmd_calendar_show)

    licences = sub.add_parser("licences", help="licences held through the portal")
    lic_sub = licences.add_subparsers(dest="licences_command", required=True)
    lic_sub.add_parser("reminders", help="expiry reminders sent, newest first").set_defaults(
        func=cmd_licences_reminders
    )

    outbox = sub.add_parser("outbox", help="messages waiting to leave")
    out_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = out_sub.add_parser("list", help="pending messages, or parked ones with --dead")
    listing.add_argument("--dead", action="store_true")
    listing.set_defaults(func=cmd_outbox_list)
    show_cmd = out_sub.add_parser("show", help="one message and the record of every try")
    show_cmd.add_argument("id", type=int)
    show_cmd.set_defaults(func=cmd_outbox_show)
    requeue_cmd = out_sub.add_parser("requeue", help="put parked messages back in the queue")
    requeue_cmd.add_argument("ids", nargs="+", type=int)
    requeue_cmd.set_defaults(func=cmd_outbox_requeue)

    purge_cmd = sub.add_parser(
        "purge", help="delete expired drafts and the files of long-closed cases (retention)"
    )
    purge_cmd.set_defaults(func=cmd_purge)

    keys = sub.add_parser("keys", help="encryption keys of stored files (docs/security.md)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a new random AES-256 key (base64)").set_defaults(
        func=cmd_keys_generate
    )
    keys_sub.add_parser(
        "reencrypt", help="rewrite files still under an older key with the newest one"
    ).set_defaults(func=cmd_keys_reencrypt)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RuntimeError as exc:  # e.g. a demo secret outside dev mode
        print(f"portal: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
