"""The platform's RSA signing key: generated once, kept in the data dir (0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from joserfc.jwk import KeySet, RSAKey

KEY_FILE = "signing-key.jwk.json"


def signing_key(data_dir: Path) -> RSAKey:
    """The private key; the same across restarts, so relying parties' cached JWKS stay valid."""
    path = data_dir / KEY_FILE
    if path.exists():
        return RSAKey.import_key(json.loads(path.read_text()))
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, private=True)
    key.ensure_kid()
    # Created private (not chmod after the write), so the key is never readable by others.
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key.as_dict(private=True), handle)
    return key


def public_jwks(key: RSAKey) -> dict:
    return dict(KeySet([key]).as_dict(private=False))
