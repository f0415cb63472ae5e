"""Where uploaded and issued files live: the `BlobStore` seam and its local implementation.

Every file is named by the SHA-256 of its plaintext and encrypted at rest (`crypto`).
Nothing outside this module knows a path: callers stage a file (`writer`), `put` it,
read it back as decrypted chunks (`chunks`), and retention asks `remove` to delete
one. The contract an object-store implementation must keep is in docs/deploy.md
("File storage").

Staging is always a local temp file: an upload is hashed, encrypted and parsed
(`open_staged`) there before it is kept, whatever the store behind it.

Why `touch` and the grace period: the portal keeps one copy of each content, and a
file one request is about to reference may be one retention is deleting at that very
moment (a draft's file expires while another citizen, or the same one, uploads the same
bytes). An upload that finds its content already stored sets the file's modification
time (`touch`) before it relies on it; `remove` claims a file by renaming it away first,
then looks at that time, and puts back a file touched within the grace period. Either
the upload's touch lands before the claim (the file is put back), or it finds no file
and stores its own copy: the content is never lost in between.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from portal.materials.crypto import (
    DecryptionError,
    Encryptor,
    KeyRing,
    check_ends,
    decrypt_chunks,
    key_id_of,
    new_key_b64,
)
from portal.materials.plainfile import open_plaintext
from portal.materials.sniff import ContentScanner
from portal.settings import Settings

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
HEAD_BYTES = 512 * 1024  # kept in memory for sniffing and image headers
TAIL_BYTES = 4096
MAX_THUMB_BYTES = 256 * 1024  # a 160×160 JPEG is a few KiB; anything larger is not ours


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


def check_sha(sha256: str) -> str:
    if not SHA_RE.match(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return sha256


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
        self.kept = False  # set by `put`

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        self._enc.write(data)
        self.size += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + data)[-TAIL_BYTES:]
        self.scanner.feed(data)

    def close(self) -> str:
        """Finish the ciphertext; the plaintext's SHA-256. Durability is `put`'s job."""
        self._enc.close()
        self._fh.close()
        return self._sha.hexdigest()

    def discard(self) -> None:
        """Drop the staged file; a no-op once `put` has taken it."""
        if not self._fh.closed:
            self._fh.close()
        self.path.unlink(missing_ok=True)


class BlobStore(Protocol):
    """The storage seam: what the portal needs from wherever files are kept.

    `LocalBlobStore` is a directory (also on a shared mount for several instances);
    an object store implements the same methods (docs/deploy.md, "File storage").
    Every method blocks (disk or network I/O, decryption): call them from a worker
    thread, never on the event loop.
    """

    def writer(self) -> BlobWriter:
        """A local staging file for one upload (hashed and encrypted as it is written)."""
        ...

    def open_staged(self, writer: BlobWriter) -> BinaryIO:
        """The staged file's plaintext, seekable and decrypted piece by piece (for parsers)."""
        ...

    def put(self, writer: BlobWriter, sha256: str, *, thumbnail: bytes | None = None) -> bool:
        """Keep a closed writer's file under its hash, durably; True when it was new.

        Content already stored is touched instead, and costs the same work (see
        docs/security.md, "Duplicate uploads"). A thumbnail is stored beside it.
        """
        ...

    def put_bytes(self, data: bytes) -> str:
        """Keep small content held in memory; its SHA-256."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def touch(self, sha256: str) -> bool:
        """Mark stored content as just used (retention keeps it); False when absent."""
        ...

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The plaintext, decrypted one 64 KiB chunk at a time as the caller iterates."""
        ...

    def read_thumb(self, sha256: str) -> bytes | None:
        """The JPEG preview (at most MAX_THUMB_BYTES), or None."""
        ...

    def remove(self, sha256: str, *, untouched_since: float) -> bool:
        """Delete content and its thumbnail unless touched at or after `untouched_since`
        (a POSIX time); False when it was kept for that reason."""
        ...

    def stored(self) -> Iterator[tuple[str, float]]:
        """(sha256, last touched) of every stored content, for retention's stray check."""
        ...

    def clear_staging(self, *, older_than: float) -> int:
        """Delete staging files left by crashed requests; how many."""
        ...

    def key_id(self, sha256: str) -> bytes: ...

    def reencrypt_all(self) -> ReencryptReport: ...


def _fsync_dir(path: Path) -> None:
    # A rename is durable once its directory is synced (POSIX; NFS commits on close).
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and Windows) cannot sync a directory
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """`<data dir>/blobs/ab/cd/<sha256>` and `thumbs/ab/<sha256>.jpg`, staging in `tmp/`.

    Valid on a shared mount (NFS, CephFS) for several portal instances: files are
    written under a unique temp name in the same filesystem, synced, then renamed
    into place, so a reader on any instance sees a whole file or none.
    """

    def __init__(self, data_dir: Path, ring: KeyRing) -> None:
        self.ring = ring
        self.root = data_dir / "blobs"
        self.thumbs = data_dir / "thumbs"
        self.tmp = data_dir / "tmp"
        for folder in (self.root, self.thumbs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    check = staticmethod(check_sha)

    def path(self, sha256: str) -> Path:
        check_sha(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def thumb_path(self, sha256: str) -> Path:
        check_sha(sha256)
        return self.thumbs / sha256[:2] / f"{sha256}.jpg"

    # --- writing ---------------------------------------------------------------------
    def writer(self) -> BlobWriter:
        return BlobWriter(self.ring, self.tmp)

    def open_staged(self, writer: BlobWriter) -> BinaryIO:
        return open_plaintext(self.ring, writer.path)

    def put(self, writer: BlobWriter, sha256: str, *, thumbnail: bytes | None = None) -> bool:
        final = self.path(sha256)
        # The same steps whether or not the content is new (sync, stage the thumbnail,
        # one rename or unlink each, sync the directory): a duplicate must not answer
        # measurably faster, or timing an upload tells whether someone else holds the
        # same document (docs/security.md, "Duplicate uploads").
        _fsync_file(writer.path)
        thumb = self._stage(thumbnail) if thumbnail is not None else None
        try:
            new = not self.touch(sha256)
            if new:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(writer.path, final)
            else:
                writer.discard()
            writer.kept = True
            if thumb is not None:
                self._place_thumb(thumb, sha256)
        finally:
            writer.discard()
            if thumb is not None:
                thumb.unlink(missing_ok=True)
        # Both directories on both paths: syncing one that changed costs a journal
        # commit. A new file changed both; a duplicate the staging one (its unlinks).
        _fsync_dir(final.parent)
        _fsync_dir(self.tmp)
        return new

    def _stage(self, data: bytes) -> Path:
        writer = self.writer()
        try:
            writer.write(data)
            writer.close()
            _fsync_file(writer.path)
        except BaseException:
            writer.discard()
            raise
        return writer.path

    def _place_thumb(self, staged: Path, sha256: str) -> None:
        target = self.thumb_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():  # else the preview of the same content is there already
            os.replace(staged, target)

    def put_bytes(self, data: bytes) -> str:
        writer = self.writer()
        try:
            writer.write(data)
            sha = writer.close()
            self.put(writer, sha)
        finally:
            writer.discard()
        return sha

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def touch(self, sha256: str) -> bool:
        try:
            os.utime(self.path(sha256))  # now; on NFS, the server's clock
        except FileNotFoundError:
            return False
        return True

    # --- reading ---------------------------------------------------------------------
    def chunks(self, sha256: str) -> Iterator[bytes]:
        # Both ends checked now, in the caller's thread: a route answers a calm error
        # for a file cut short or under a dropped key, never a download cut off midway.
        fh = open(self.path(sha256), "rb")  # noqa: SIM115 - closed by _decrypted
        try:
            check_ends(self.ring, fh)
        except BaseException:
            fh.close()
            raise
        return self._decrypted(fh)

    def _decrypted(self, fh: BinaryIO) -> Iterator[bytes]:
        with fh:
            yield from decrypt_chunks(self.ring, fh)

    def read(self, sha256: str) -> bytes:
        """The whole plaintext: for tests and small tools only, never a request path."""
        return b"".join(self.chunks(sha256))

    def read_thumb(self, sha256: str) -> bytes | None:
        path = self.thumb_path(sha256)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return None
        with fh:
            if os.fstat(fh.fileno()).st_size > MAX_THUMB_BYTES:
                raise DecryptionError("thumbnail larger than any we make")
            return b"".join(decrypt_chunks(self.ring, fh))

    def key_id(self, sha256: str) -> bytes:
        with open(self.path(sha256), "rb") as fh:
            return key_id_of(fh)

    # --- retention ---------------------------------------------------------------------
    def remove(self, sha256: str, *, untouched_since: float) -> bool:
        final = self.path(sha256)
        claimed = self.tmp / f"remove-{secrets.token_hex(12)}"
        try:
            # Renamed away first: from here on a concurrent upload's touch fails and it
            # stores its own copy; a touch that landed before shows in the mtime below.
            os.rename(final, claimed)
        except FileNotFoundError:
            self.thumb_path(sha256).unlink(missing_ok=True)
            return True
        try:
            if claimed.stat().st_mtime >= untouched_since:
                # Put back. A fresh copy an upload stored meanwhile holds the same
                # plaintext, so replacing it loses nothing (rename only: no hard links
                # needed on a shared mount).
                os.replace(claimed, final)
                return False
        finally:
            claimed.unlink(missing_ok=True)
        if not final.exists():  # else an upload stored it again meanwhile, preview included
            self.thumb_path(sha256).unlink(missing_ok=True)
        return True

    def stored(self) -> Iterator[tuple[str, float]]:
        for path in self.root.glob("*/*/*"):
            if SHA_RE.match(path.name):
                try:
                    yield path.name, path.stat().st_mtime
                except FileNotFoundError:
                    continue

    def clear_staging(self, *, older_than: float) -> int:
        count = 0
        for path in self.tmp.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < older_than:
                    path.unlink(missing_ok=True)
                    count += 1
            except FileNotFoundError:
                continue
        return count

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
            _fsync_file(writer.path)
            os.replace(writer.path, path)
            _fsync_dir(path.parent)
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


def open_store(settings: Settings) -> BlobStore:
    """The store the settings describe (the one place that picks an implementation)."""
    return LocalBlobStore(settings.data_dir, key_ring(settings))


__all__ = [
    "BlobStore",
    "BlobWriter",
    "DecryptionError",
    "LocalBlobStore",
    "ReencryptReport",
    "key_ring",
    "open_store",
]
