"""Files on disk under the data dir, named by the SHA-256 of their content, encrypted at rest."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from portal.materials.crypto import (
    DecryptionError,
    Encryptor,
    KeyRing,
    decrypt_chunks,
    key_id_of,
    new_key_b64,
)
from portal.materials.sniff import ContentScanner
from portal.settings import Settings

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
HEAD_BYTES = 512 * 1024  # kept in memory for sniffing and image headers
TAIL_BYTES = 4096


def key_ring(settings: Settings) -> KeyRing:
    """Keys from PORTAL_ENCRYPTION_KEYS, or one generated once and kept in the data dir."""
    if settings.encryption_keys:
        return KeyRing.from_setting(settings.encryption_keys)
    path = settings.data_dir / "encryption_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key_b64())
    return KeyRing.from_setting(path.read_text().strip())


class BlobWriter:
    """Streams one file: hashes the plaintext, encrypts it into a temp file, keeps its head."""

    def __init__(self, ring: KeyRing, tmp_dir: Path) -> None:
        self.path = tmp_dir / f"upload-{secrets.token_hex(12)}"
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()/discard()
        self._enc = Encryptor(ring, self._fh)
        self._sha = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.tail = b""
        self.scanner = ContentScanner()

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        self._enc.write(data)
        self.size += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + data)[-TAIL_BYTES:]
        self.scanner.feed(data)

    def close(self) -> str:
        self._enc.close()
        self._fh.close()
        return self._sha.hexdigest()

    def discard(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, data_dir: Path, ring: KeyRing) -> None:
        self.ring = ring
        self.root = data_dir / "blobs"
        self.thumbs = data_dir / "thumbs"
        self.tmp = data_dir / "tmp"
        for folder in (self.root, self.thumbs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def check(sha256: str) -> str:
        if not SHA_RE.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return sha256

    def path(self, sha256: str) -> Path:
        self.check(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def thumb_path(self, sha256: str) -> Path:
        self.check(sha256)
        return self.thumbs / sha256[:2] / f"{sha256}.jpg"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self.ring, self.tmp)

    def keep(self, writer: BlobWriter, sha256: str) -> bool:
        """Move a finished upload into place; False when the content was already stored."""
        final = self.path(sha256)
        if final.exists():
            writer.discard()
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.path, final)
        return True

    def put_bytes(self, data: bytes, *, path: Path | None = None) -> str:
        """Store small content held in memory (a fetched licence, a thumbnail)."""
        writer = self.writer()
        try:
            writer.write(data)
            sha = writer.close()
        except BaseException:
            writer.discard()
            raise
        if path is None:
            self.keep(writer, sha)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(writer.path, path)
        return sha

    def chunks(self, sha256: str) -> Iterator[bytes]:
        with open(self.path(sha256), "rb") as fh:
            yield from decrypt_chunks(self.ring, fh)

    def read(self, sha256: str) -> bytes:
        return b"".join(self.chunks(sha256))

    def read_thumb(self, sha256: str) -> bytes | None:
        path = self.thumb_path(sha256)
        if not path.exists():
            return None
        with open(path, "rb") as fh:
            return b"".join(decrypt_chunks(self.ring, fh))

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
        self.thumb_path(sha256).unlink(missing_ok=True)

    def key_id(self, sha256: str) -> bytes:
        with open(self.path(sha256), "rb") as fh:
            return key_id_of(fh)

    # --- key rotation (docs/security.md) ----------------------------------------------
    def stored_files(self) -> Iterator[Path]:
        """Every encrypted file: blobs and their thumbnails."""
        for folder in (self.root, self.thumbs):
            yield from sorted(p for p in folder.rglob("*") if p.is_file())

    def reencrypt(self, path: Path) -> bool:
        """Rewrite one stored file under the newest key; False when it already uses it.

        The new copy is written beside the data, checked, then swapped in atomically:
        a reader holding the old file keeps reading it, a crash leaves the old one.
        """
        with open(path, "rb") as fh:
            if key_id_of(fh) == self.ring.current_id:
                return False
        writer = self.writer()
        try:
            with open(path, "rb") as fh:
                for chunk in decrypt_chunks(self.ring, fh):
                    writer.write(chunk)
            sha256 = writer.close()
            if path.is_relative_to(self.root) and sha256 != path.name:
                raise DecryptionError("content does not match its name")
            os.replace(writer.path, path)
        except BaseException:
            writer.discard()
            raise
        return True

    def reencrypt_all(self) -> ReencryptReport:
        """Bring every stored file under the newest key (`portal keys reencrypt`)."""
        report = ReencryptReport()
        for path in self.stored_files():
            try:
                if self.reencrypt(path):
                    report.rewritten += 1
                else:
                    report.current += 1
            except (DecryptionError, OSError) as exc:
                report.failed.append((str(path.relative_to(self.root.parent)), str(exc)))
        return report


@dataclass
class ReencryptReport:
    rewritten: int = 0
    current: int = 0  # already under the newest key
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


__all__ = ["BlobStore", "BlobWriter", "DecryptionError", "ReencryptReport", "key_ring"]
