"""Content-addressed file store: uploaded materials and issued licences, named by SHA-256."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from types import TracebackType

from bureau.errors import TooLarge

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
DEFAULT_TYPE = "application/octet-stream"


def is_sha256(value: str) -> bool:
    return bool(SHA256_HEX.fullmatch(value))


def clean_content_type(value: str | None) -> str:
    """The media type without parameters, or octet-stream when it is not a plain `type/sub`."""
    media = (value or "").split(";", 1)[0].strip().lower()
    return media if _CONTENT_TYPE.fullmatch(media) else DEFAULT_TYPE


class Incoming:
    """A body being received into a temporary file, hashed while it streams."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="in-")
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.size = 0
        self._kept = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max:
            raise TooLarge(f"文件超过 {self._max // (1024 * 1024)} MB 的上限。")
        self._hash.update(chunk)
        self._file.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def keep(self, content_type: str) -> bool:
        """Move the file into the store under its hash; True when it was not held before."""
        self._file.close()
        self._kept = True
        return self._store._adopt(self.path, self.sha256, content_type)

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
    """Files under `<data dir>/blobs/ab/cd/<sha256>`, with the media type beside each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return is_sha256(sha256) and self.path(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    def content_type(self, sha256: str) -> str:
        try:
            return self.path(sha256).with_suffix(".type").read_text().strip() or DEFAULT_TYPE
        except FileNotFoundError:
            return DEFAULT_TYPE

    def incoming(self, max_bytes: int) -> Incoming:
        return Incoming(self, max_bytes)

    def put_bytes(self, data: bytes, content_type: str) -> str:
        """Store bytes produced here (an issued licence); returns their SHA-256."""
        with self.incoming(max_bytes=len(data) + 1) as incoming:
            incoming.write(data)
            incoming.keep(content_type)
            return incoming.sha256

    def _adopt(self, tmp: Path, sha256: str, content_type: str) -> bool:
        target = self.path(sha256)
        if target.is_file():
            tmp.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        # The type file goes first and the data is renamed into place last, so a blob
        # that exists is always complete, also when two uploads of it race.
        target.with_suffix(".type").write_text(clean_content_type(content_type))
        os.replace(tmp, target)
        return True
