"""`idp` command: run the reference identity platform."""

from __future__ import annotations

import argparse
import sys

from idp.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from idp.app import create_app
    from idp.identities import DEMO_IDENTITIES

    settings = get_settings()
    app = create_app(settings)
    print(f"统一身份认证平台（参考实现）已就绪：{settings.issuer}/", flush=True)
    for identity in DEMO_IDENTITIES:
        print(f"  {identity.name}（{identity.level} 级）：{identity.key} / {identity.password}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="idp", description="统一身份认证平台（参考实现）")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the OpenID Connect provider")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8200)
    serve.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
