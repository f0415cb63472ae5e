"""Content-addressed file store: uploaded materials and issued licences, named by SHA-256.

Encrypted at rest with AES-256-GCM (the `cryptography` library) in 64 KiB chunks, so a
file streams in and out and is never held whole in memory. Layout of a stored file:

    b"XZBUENC1" | nonce prefix (8 bytes)
    then chunks: length (4 bytes, big-endian) | ciphertext+tag

Chunk i is sealed with nonce = prefix | i (4 bytes) and associated data
header | i | final flag; the last chunk is an empty one with the final flag set, so
truncating, reordering or splicing chunks fails authentication. The key is
`BUREAU_BLOB_KEY` (bureau.settings); the portal uses a format of its own, nothing
is shared.

A duplicate `PUT` costs the same work as a new one (received, hashed, encrypted and
synced to a temp file, then renamed or dropped): see docs/security.md, "Duplicate
uploads".
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bureau.errors import DomainError, TooLarge

log = logging.getLogger(__name__)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
DEFAULT_TYPE = "application/octet-stream"

MAGIC = b"XZBUENC1"
HEADER_LEN = len(MAGIC) + 8
CHUNK = 64 * 1024
_TAG = 16
_FULL = 4 + CHUNK + _TAG  # one full chunk on disk
_FINAL = 4 + _TAG  # the empty last chunk


class CorruptBlob(Exception):
    """A stored file that does not decrypt: altered, cut short, or under another key."""


class UnreadableBlob(DomainError):
    """The answer for a held file that does not verify: the store's fault, not the caller's."""

    status = 500
    code = "blob_unreadable"


def is_sha256(value: str) -> bool:
    return bool(SHA256_HEX.fullmatch(value))


def clean_content_type(value: str | None) -> str:
    """The media type without parameters, or octet-stream when it is not a plain `type/sub`."""
    media = (value or "").split(";", 1)[0].strip().lower()
    return media if _CONTENT_TYPE.fullmatch(media) else DEFAULT_TYPE


def parse_key(value: str) -> bytes:
    """A base64 AES-256 key (`BUREAU_BLOB_KEY`); ValueError when it is not 32 bytes."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raise ValueError("BUREAU_BLOB_KEY is not base64") from None
    if len(key) != 32:
        raise ValueError("BUREAU_BLOB_KEY must decode to 32 bytes (AES-256)")
    return key


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">I", index) + (b"\x01" if final else b"\x00")


class _Sealer:
    """Plaintext in with `write`, ciphertext out to `out` as each chunk fills."""

    def __init__(self, aead: AESGCM, out: BinaryIO) -> None:
        self._aead, self._out = aead, out
        self._header = MAGIC + os.urandom(8)
        self._index = 0
        self._buffer = bytearray()
        out.write(self._header)

    def _seal(self, data: bytes, final: bool) -> None:
        nonce = self._header[len(MAGIC) :] + struct.pack(">I", self._index)
        sealed = self._aead.encrypt(nonce, data, _aad(self._header, self._index, final))
        self._out.write(struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), False)
            del self._buffer[:CHUNK]

    def close(self) -> None:
        if self._buffer:
            self._seal(bytes(self._buffer), False)
            self._buffer.clear()
        self._seal(b"", True)


def _unseal(aead: AESGCM, source: BinaryIO) -> Iterator[bytes]:
    header = source.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise CorruptBlob("not an encrypted blob")
    index = 0
    while True:
        length = source.read(4)
        if len(length) != 4:
            raise CorruptBlob("blob is truncated")
        (size,) = struct.unpack(">I", length)
        if not _TAG <= size <= CHUNK + _TAG:
            raise CorruptBlob("chunk length out of range")
        sealed = source.read(size)
        nonce = header[len(MAGIC) :] + struct.pack(">I", index)
        final = size == _TAG
        try:
            data = aead.decrypt(nonce, sealed, _aad(header, index, final))
        except InvalidTag:
            raise CorruptBlob("blob failed authentication") from None
        if final:
            if source.read(1):
                raise CorruptBlob("data after the final chunk")
            return
        yield data
        index += 1


def _plain_size(stored: int) -> int | None:
    """The plaintext size of an encrypted file of `stored` bytes (the layout is fixed)."""
    body = stored - HEADER_LEN - _FINAL
    if body < 0:
        return None
    full, rest = divmod(body, _FULL)
    if rest and rest <= 4 + _TAG:
        return None
    return full * CHUNK + (rest - 4 - _TAG if rest else 0)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every filesystem syncs a directory
    finally:
        os.close(fd)


class Incoming:
    """A body being received into an encrypted temporary file, hashed while it streams."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="in-")
        self._file = os.fdopen(fd, "wb")
        self._sealer = _Sealer(store.aead, self._file)
        self.path = Path(name)
        self.size = 0
        self._kept = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max:
            raise TooLarge(f"文件超过 {self._max // (1024 * 1024)} MB 的上限。")
        self._hash.update(chunk)
        self._sealer.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def keep(self, content_type: str) -> bool:
        """Move the file into the store under its hash; True when it was not held before.

        Call only once the hash is checked against the name the file will have.
        """
        self._finish()
        return self._store._adopt(self.path, self.sha256, content_type)

    def _finish(self) -> None:
        """Seal the last chunk and make the temp file durable; it is the caller's now."""
        self._sealer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._kept = True

    def __enter__(self) -> Incoming:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._file.closed:
            self._file.close()
        if not self._kept:
            self.path.unlink(missing_ok=True)


class BlobStore:
    """Files under `<data dir>/blobs/ab/cd/<sha256>`, encrypted, with the media type beside each."""

    def __init__(self, root: Path, key: bytes) -> None:
        self.root = root
        self.aead = AESGCM(key)
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return is_sha256(sha256) and self.path(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        """The plaintext size of a held file, None when absent."""
        try:
            return _plain_size(self.path(sha256).stat().st_size)
        except (FileNotFoundError, ValueError):
            return None

    def content_type(self, sha256: str) -> str:
        try:
            return self.path(sha256).with_suffix(".type").read_text().strip() or DEFAULT_TYPE
        except FileNotFoundError:
            return DEFAULT_TYPE

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The plaintext, decrypted one chunk at a time; CorruptBlob when it does not verify.

        The header and the final chunk are checked before the first chunk is handed
        out (so a response can still answer a clean error for a file cut short or
        under another key); a chunk altered in the middle fails when it is reached,
        and the portal checks the SHA-256 of what it fetches as well.
        """
        fh = open(self.path(sha256), "rb")  # noqa: SIM115 - closed by the generator
        try:
            self._check_ends(fh)
        except BaseException:
            fh.close()
            raise
        return self._stream(fh)

    def _check_ends(self, fh: BinaryIO) -> None:
        header = fh.read(HEADER_LEN)
        if len(header) != HEADER_LEN or not header.startswith(MAGIC):
            raise CorruptBlob("not an encrypted blob")
        stored = os.fstat(fh.fileno()).st_size
        if _plain_size(stored) is None:
            raise CorruptBlob("blob is truncated")
        index = -(-(stored - HEADER_LEN - _FINAL) // _FULL)  # chunks before the final one
        fh.seek(stored - _FINAL)
        framed = fh.read(_FINAL)
        nonce = header[len(MAGIC) :] + struct.pack(">I", index)
        if framed[:4] != struct.pack(">I", _TAG):
            raise CorruptBlob("blob does not end with its final chunk")
        try:
            self.aead.decrypt(nonce, framed[4:], _aad(header, index, True))
        except InvalidTag:
            raise CorruptBlob("blob failed authentication") from None
        fh.seek(0)

    def open_for_response(self, sha256: str) -> Iterator[bytes]:
        """`chunks`, with a file that fails its checks turned into a logged 500 answer."""
        try:
            return self.chunks(sha256)
        except CorruptBlob as exc:
            log.error("blob %s cannot be read: %s", sha256[:12], exc)
            raise UnreadableBlob("文件已损坏或无法解密，请联系审批系统管理员。") from None

    def _stream(self, fh: BinaryIO) -> Iterator[bytes]:
        with fh:
            yield from _unseal(self.aead, fh)

    def incoming(self, max_bytes: int) -> Incoming:
        return Incoming(self, max_bytes)

    def put_bytes(self, data: bytes, content_type: str) -> str:
        """Store bytes produced here (an issued licence); returns their SHA-256."""
        with self.incoming(max_bytes=len(data) + 1) as incoming:
            incoming.write(data)
            incoming.keep(content_type)
            return incoming.sha256

    def encrypt_plain_files(self) -> tuple[int, int, list[str]]:
        """Encrypt files a back office stored before encryption at rest (`bureau blobs encrypt`).

        Each is read in pieces, checked against its name, sealed into a temp file and
        swapped in atomically. Returns (encrypted, already encrypted, names refused).
        """
        encrypted, current, refused = 0, 0, []
        for path in sorted(self.root.glob("*/*/*")):
            if not is_sha256(path.name):
                continue
            with open(path, "rb") as fh:
                if fh.read(len(MAGIC)) == MAGIC:
                    current += 1
                    continue
            with (
                self.incoming(max_bytes=path.stat().st_size + 1) as incoming,
                open(path, "rb") as fh,
            ):
                while data := fh.read(CHUNK):
                    incoming.write(data)
                if incoming.sha256 != path.name:
                    refused.append(path.name)
                    continue
                incoming._finish()
                os.replace(incoming.path, path)
            _fsync_dir(path.parent)
            encrypted += 1
        return encrypted, current, refused

    def _adopt(self, tmp: Path, sha256: str, content_type: str) -> bool:
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The same steps for a new file and a duplicate (the type file staged, one
        # rename or unlink each, the directory synced), so the answer's timing does not
        # tell whether the content was held already.
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="type-")
        type_tmp = Path(name)
        with os.fdopen(fd, "w") as fh:
            fh.write(clean_content_type(content_type))
        try:
            new = not target.is_file()
            if new:
                # The type file goes first and the data is renamed into place last, so a
                # blob that exists is always complete, also when two uploads of it race.
                os.replace(type_tmp, target.with_suffix(".type"))
                os.replace(tmp, target)
            else:
                tmp.unlink(missing_ok=True)
        finally:
            type_tmp.unlink(missing_ok=True)
        # Both directories, on both paths: syncing a directory that changed costs a
        # journal commit (measured: what made a new PUT ~40% slower than a duplicate
        # when only the target was synced). A new file changed both; a duplicate the
        # temp directory, so each path pays for one commit.
        _fsync_dir(target.parent)
        _fsync_dir(self.tmp_dir)
        return new
