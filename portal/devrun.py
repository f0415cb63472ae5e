"""`make run`: the portal, the reference back office and the reference identity
platform side by side on loopback.

A demo configuration kept under ./var: a shared exchange secret, a staff password and
the portal's client secret at the identity platform generated on first run, so the
three always match.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PORTAL_PORT = int(os.environ.get("PORTAL_PORT", "8000"))
BUREAU_PORT = int(os.environ.get("BUREAU_PORT", "8100"))
IDP_PORT = int(os.environ.get("IDP_PORT", "8200"))
SSO_CLIENT_ID = "xzsp-portal"


def _kept(path: Path, make) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _wait(url: str, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _demo_identities() -> list[str]:
    # Read from the platform's own table, so what is printed is what its login page offers.
    from idp.identities import DEMO_IDENTITIES

    kinds = {"person": "个人", "legal_person": "法人"}
    return [
        f"{i.name}（{kinds[i.subject_type]}，{i.level} 级）密码 {i.password}"
        for i in DEMO_IDENTITIES
    ]


def main() -> int:
    ports = (("PORTAL_PORT", PORTAL_PORT), ("BUREAU_PORT", BUREAU_PORT), ("IDP_PORT", IDP_PORT))
    for name, port in ports:
        if not _port_free(port):
            print(
                f"Port {port} is already in use. Stop what uses it, or choose another: make run {name}=<port>"
            )
            return 1
    var = Path("var").resolve()
    secret = _kept(var / "exchange-secret", lambda: secrets.token_urlsafe(32))
    staff_password = _kept(var / "staff-password", lambda: secrets.token_urlsafe(9))
    sso_secret = _kept(var / "sso-client-secret", lambda: secrets.token_urlsafe(32))
    portal_url = f"http://127.0.0.1:{PORTAL_PORT}"
    bureau_url = f"http://127.0.0.1:{BUREAU_PORT}"
    idp_url = f"http://127.0.0.1:{IDP_PORT}"
    sso_client = {
        SSO_CLIENT_ID: {"secret": sso_secret, "redirect_uris": [f"{portal_url}/login/sso/callback"]}
    }
    env = dict(os.environ)
    env.update(
        {
            "PORTAL_DATA_DIR": str(var / "portal"),
            "PORTAL_BUREAU_URL": bureau_url,
            "PORTAL_BUREAU_SECRET": secret,
            "PORTAL_PUBLIC_URL": portal_url,
            "PORTAL_RELOAD_TEMPLATES": "true",  # an edited template shows on the next load
            "BUREAU_DATA_DIR": str(var / "bureau"),
            "BUREAU_SECRET": secret,
            "BUREAU_PORTAL_URL": portal_url,
            "BUREAU_PUBLIC_URL": bureau_url,
            "BUREAU_STAFF_USER": "staff",
            "BUREAU_STAFF_PASSWORD": staff_password,
            "PORTAL_SSO_ISSUER": idp_url,
            "PORTAL_SSO_CLIENT_ID": SSO_CLIENT_ID,
            "PORTAL_SSO_CLIENT_SECRET": sso_secret,
            "IDP_DATA_DIR": str(var / "idp"),
            "IDP_ISSUER": idp_url,
            "IDP_CLIENTS": json.dumps(sso_client),
        }
    )
    bin_dir = Path(sys.executable).parent
    procs = [
        subprocess.Popen([str(bin_dir / "idp"), "serve", "--port", str(IDP_PORT)], env=env),
        subprocess.Popen([str(bin_dir / "bureau"), "serve", "--port", str(BUREAU_PORT)], env=env),
        subprocess.Popen([str(bin_dir / "portal"), "serve", "--port", str(PORTAL_PORT)], env=env),
    ]

    def stop(*_args) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        ready = (
            _wait(f"{portal_url}/healthz")
            and _wait(f"{bureau_url}/healthz")
            and _wait(f"{idp_url}/healthz")
            and all(p.poll() is None for p in procs)
        )
        line = "=" * 64
        print(f"\n{line}")
        if ready:
            print(f"  市民门户 Citizen portal:      {portal_url}/")
            print(f"  审批局后台 Back office:       {bureau_url}/")
            print(f"  后台账号 Staff login:         staff / {staff_password}")
            print(f"  统一身份认证 Identity platform: {idp_url}/")
            print("  演示身份 Demo identities (choose one on its login page, type the password):")
            for identity in _demo_identities():
                print(f"    {identity}")
            print(
                "  Register with a phone (the SMS code is printed here) to draft and pre-review;"
                "\n  formal submission needs 统一身份认证 level ≥ 2: sign in there with one above."
            )
            print("  Data under ./var; stop with Ctrl-C.")
        else:
            print("  The servers did not come up within 60 s; see the messages above.")
        print(f"{line}\n", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
