"""`bureau` command: run the reference back office, or migrate its database."""

from __future__ import annotations

import argparse
import logging
import sys

from bureau.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bureau.app import create_app, prepare_database
    from bureau.db import Database

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        generated = prepare_database(settings, db)
    finally:
        db.dispose()
    base = f"http://{args.host}:{args.port}"
    print(f"审批系统（参考实现）已就绪：{base}/staff/", flush=True)
    print(f"  工作人员账号：{settings.staff_user}", flush=True)
    if generated:
        print(f"  初始密码（仅显示这一次）：{generated}", flush=True)
        print("  可设置 BUREAU_STAFF_PASSWORD 指定或重置密码。", flush=True)
    elif settings.staff_password:
        print("  密码：BUREAU_STAFF_PASSWORD 的值", flush=True)
    print(f"  回调地址：{settings.callback_url}", flush=True)
    app = create_app(settings, migrate=False)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from bureau.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    print("数据库已升级到最新版本。")
    return 0


def _blob_key(args: argparse.Namespace) -> int:
    from bureau.blobs import new_key

    print(new_key())  # for BUREAU_BLOB_KEY; keep it apart from the data dir and its backups
    return 0


def _blobs_encrypt(args: argparse.Namespace) -> int:
    from bureau.blobs import BlobStore, parse_key

    settings = get_settings()
    store = BlobStore(settings.data_dir / "blobs", parse_key(settings.blob_key))
    encrypted, current, refused = store.encrypt_plain_files()
    print(f"已加密 {encrypted} 个文件，已是密文 {current} 个。")
    for name in refused:
        print(f"内容与文件名（SHA-256）不符，未处理：{name}", file=sys.stderr)
    return 1 if refused else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bureau", description="常州市武进区行政审批局 审批系统（参考实现）"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="migrate, seed the staff account and serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.set_defaults(func=_serve)
    db = commands.add_parser("db", help="database commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(func=_db_upgrade)
    commands.add_parser(
        "blob-key", help="print a new random key for BUREAU_BLOB_KEY (files at rest)"
    ).set_defaults(func=_blob_key)
    blobs = commands.add_parser("blobs", help="stored files")
    blobs_commands = blobs.add_subparsers(dest="blobs_command", required=True)
    blobs_commands.add_parser(
        "encrypt", help="encrypt files stored before encryption at rest"
    ).set_defaults(func=_blobs_encrypt)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Alembic lists every plugin it loads at INFO: noise on each start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
