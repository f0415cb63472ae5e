"""A read-only, seekable view of the plaintext of one encrypted file, chunk by chunk.

Parsers that check an upload's content (pypdf, Pillow) need a file they can seek in.
Decrypting the upload into a second, plaintext temp file would leave a citizen's ID
scan on disk in clear; reading it whole into memory would cost up to the upload
limit per request. The chunk layout of `crypto` has a fixed size per chunk, so the
offset of any plaintext byte is known: only the chunks a parser touches are
decrypted, a few kept in a small cache.
"""

from __future__ import annotations

import io
import os
import struct
from collections import OrderedDict
from pathlib import Path

from portal.materials.crypto import CHUNK, HEADER_LEN, MAGIC, DecryptionError, KeyRing

_SEALED = CHUNK + 16  # ciphertext and GCM tag of a full chunk
_STRIDE = 4 + _SEALED  # its length prefix, then the sealed chunk
_FINAL = 4 + 16  # the empty last chunk
_CACHED_CHUNKS = 8  # 512 KiB: a PDF's xref, trailer and the object being read


class _DecryptedRaw(io.RawIOBase):
    def __init__(self, ring: KeyRing, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._open(ring)
        except BaseException:
            self._fh.close()
            raise
        self._pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def _open(self, ring: KeyRing) -> None:
        self._header = self._fh.read(HEADER_LEN)
        if len(self._header) != HEADER_LEN or not self._header.startswith(MAGIC):
            raise DecryptionError("not an encrypted file")
        self._aead = ring.aead(self._header[len(MAGIC) : len(MAGIC) + 8])
        self._prefix = self._header[-8:]
        body = os.fstat(self._fh.fileno()).st_size - HEADER_LEN - _FINAL
        if body < 0:
            raise DecryptionError("file is truncated")
        full, rest = divmod(body, _STRIDE)
        if rest and rest < 4 + 16 + 1:
            raise DecryptionError("file is truncated")
        self._chunks = full + (1 if rest else 0)
        self.size = full * CHUNK + (rest - 20 if rest else 0)
        # The final chunk is authenticated once, up front: a file cut short (or with
        # chunks spliced from another file) fails here, before anything is parsed.
        self._fh.seek(HEADER_LEN + body)
        self._unseal(self._chunks, self._fh.read(_FINAL), final=True)

    def _unseal(self, index: int, framed: bytes, *, final: bool = False) -> bytes:
        if len(framed) < 4 + 16:
            raise DecryptionError("file is truncated")
        (length,) = struct.unpack(">I", framed[:4])
        if length != len(framed) - 4:
            raise DecryptionError("chunk length does not match the layout")
        counter = struct.pack(">I", index)
        try:
            return self._aead.decrypt(
                self._prefix + counter,
                framed[4:],
                self._header + counter + (b"\x01" if final else b"\x00"),
            )
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError("authentication failed") from exc

    def _chunk(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is not None:
            self._cache.move_to_end(index)
            return data
        self._fh.seek(HEADER_LEN + index * _STRIDE)
        last = index == self._chunks - 1
        framed = self._fh.read(4 + (self.size - index * CHUNK) + 16 if last else _STRIDE)
        data = self._unseal(index, framed)
        self._cache[index] = data
        if len(self._cache) > _CACHED_CHUNKS:
            self._cache.popitem(last=False)
        return data

    # io.RawIOBase ----------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        position = base + offset
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._pos < self.size:
            index, start = divmod(self._pos, CHUNK)
            data = self._chunk(index)[start : start + len(view) - written]
            view[written : written + len(data)] = data
            written += len(data)
            self._pos += len(data)
        return written

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
            self._cache.clear()
        super().close()


def open_plaintext(ring: KeyRing, path: Path) -> io.BufferedReader:
    """The plaintext of the encrypted file at `path`, as a seekable binary file.

    DecryptionError when the file is not intact (checked on opening for its end,
    and for each chunk when it is first read).
    """
    return io.BufferedReader(_DecryptedRaw(ring, path), buffer_size=CHUNK)
