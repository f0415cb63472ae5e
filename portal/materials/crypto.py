"""Encryption at rest: AES-256-GCM in 64 KiB chunks, so files stream in and out.

Layout of a stored file:

    b"XZSPENC1" | key id (8 bytes) | nonce prefix (8 bytes)
    then chunks: length (4 bytes, big-endian) | ciphertext+tag

Chunk i is sealed with nonce = prefix | i (4 bytes) and associated data
header | i | final flag; the last chunk is an empty one with the final flag set,
so truncating, reordering or splicing chunks fails authentication.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"XZSPENC1"
CHUNK = 64 * 1024
HEADER_LEN = len(MAGIC) + 8 + 8


class DecryptionError(Exception):
    pass


class KeyRing:
    """Keys newest first: new files use the first; any listed key can read."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        for key in keys:
            if len(key) != 32:
                raise ValueError("AES-256 keys are 32 bytes")
        self._keys = {self.key_id(k): k for k in keys}
        self.current_id = self.key_id(keys[0])

    @staticmethod
    def key_id(key: bytes) -> bytes:
        return hashlib.sha256(b"xzsp-key-id" + key).digest()[:8]

    @classmethod
    def from_setting(cls, value: str) -> KeyRing:
        keys = [
            base64.b64decode(part.strip(), validate=True)
            for part in value.split(",")
            if part.strip()
        ]
        return cls(keys)

    def aead(self, key_id: bytes) -> AESGCM:
        try:
            return AESGCM(self._keys[key_id])
        except KeyError:
            raise DecryptionError(
                "file was encrypted with a key that is no longer configured"
            ) from None

    def has(self, key_id: bytes) -> bool:
        return key_id in self._keys


def new_key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class Encryptor:
    """Feed plaintext with `write`, then `close`; ciphertext goes to `out` as it fills."""

    def __init__(self, ring: KeyRing, out: BinaryIO) -> None:
        self.out = out
        self.aead = ring.aead(ring.current_id)
        self.header = MAGIC + ring.current_id + os.urandom(8)
        self.prefix = self.header[-8:]
        self.counter = 0
        self.buffer = bytearray()
        out.write(self.header)

    def _seal(self, data: bytes, final: bool) -> None:
        index = struct.pack(">I", self.counter)
        sealed = self.aead.encrypt(
            self.prefix + index, data, self.header + index + (b"\x01" if final else b"\x00")
        )
        self.out.write(struct.pack(">I", len(sealed)))
        self.out.write(sealed)
        self.counter += 1

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= CHUNK:
            self._seal(bytes(self.buffer[:CHUNK]), False)
            del self.buffer[:CHUNK]

    def close(self) -> None:
        if self.buffer:
            self._seal(bytes(self.buffer), False)
            self.buffer.clear()
        self._seal(b"", True)


def decrypt_chunks(ring: KeyRing, source: BinaryIO) -> Iterator[bytes]:
    """Plaintext chunks of an encrypted file; DecryptionError when anything is off."""
    header = source.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise DecryptionError("not an encrypted file")
    aead = ring.aead(header[len(MAGIC) : len(MAGIC) + 8])
    prefix = header[-8:]
    counter = 0
    while True:
        size_bytes = source.read(4)
        if len(size_bytes) != 4:
            raise DecryptionError("file is truncated")
        (size,) = struct.unpack(">I", size_bytes)
        if size > CHUNK + 16:
            raise DecryptionError("chunk too large")
        sealed = source.read(size)
        index = struct.pack(">I", counter)
        nonce = prefix + index
        try:
            if size == 16:  # the empty final chunk
                aead.decrypt(nonce, sealed, header + index + b"\x01")
                return
            yield aead.decrypt(nonce, sealed, header + index + b"\x00")
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError("authentication failed") from exc
        counter += 1


def check_ends(ring: KeyRing, source: BinaryIO) -> None:
    """Authenticate the header and the final chunk of a seekable file, then rewind.

    Cheap (two small reads), so a reader can refuse a file cut short, or one under a
    key no longer configured, before it starts answering; a chunk altered in the
    middle still fails in `decrypt_chunks` when it is reached.
    """
    header = source.read(HEADER_LEN)
    if len(header) != HEADER_LEN or not header.startswith(MAGIC):
        raise DecryptionError("not an encrypted file")
    aead = ring.aead(header[len(MAGIC) : len(MAGIC) + 8])
    end = source.seek(0, os.SEEK_END)
    body = end - HEADER_LEN - (4 + 16)
    if body < 0:
        raise DecryptionError("file is truncated")
    index = struct.pack(">I", -(-body // (4 + CHUNK + 16)))  # chunks before the final one
    source.seek(end - (4 + 16))
    framed = source.read(4 + 16)
    if framed[:4] != struct.pack(">I", 16):
        raise DecryptionError("file does not end with its final chunk")
    try:
        aead.decrypt(header[-8:] + index, framed[4:], header + index + b"\x01")
    except Exception as exc:  # cryptography raises InvalidTag
        raise DecryptionError("authentication failed") from exc
    source.seek(0)


def key_id_of(source: BinaryIO) -> bytes:
    header = source.read(HEADER_LEN)
    return header[len(MAGIC) : len(MAGIC) + 8]
