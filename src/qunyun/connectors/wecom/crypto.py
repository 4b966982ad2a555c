"""WeCom callback crypto (企业微信 回调 加解密).

- ``msg_signature`` = hex SHA-1 over the token, the timestamp, the nonce and the ciphertext,
  sorted as strings and concatenated (compared in constant time by the caller);
- the ciphertext is base64 of AES-256-CBC, key = base64-decode(EncodingAESKey + "="), IV = the
  key's first 16 bytes, PKCS#7 padding to a multiple of **32** bytes (the pad byte is 1..32);
- the plaintext is 16 random bytes, the message length (4 bytes, big-endian), the message and
  the receive id, which for an internal app's callbacks is the corp id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
import xml.etree.ElementTree as ET
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")


class CryptoError(Exception):
    """A ciphertext that does not decrypt to a WeCom plaintext (``reason`` says which check failed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature of a request."""
    parts = sorted([token, timestamp, nonce, encrypted])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of an EncodingAESKey (43 characters of base64 without its '=')."""
    if not _AES_KEY.fullmatch(encoding_aes_key):
        raise CryptoError("aes_key")
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise CryptoError("aes_key")
    return key


def pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    if not data:
        raise CryptoError("padding")
    n = data[-1]
    if n < 1 or n > BLOCK or n > len(data) or data[-n:] != bytes([n]) * n:
        raise CryptoError("padding")
    return data[:-n]


class WeComCrypto:
    """Encrypts and decrypts one connection's callbacks (token, EncodingAESKey, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.key = aes_key(encoding_aes_key)
        self.iv = self.key[:16]
        self.receive_id = receive_id

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self.token, timestamp, nonce, encrypted)

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside ``encrypted`` (base64); CryptoError when it is not one of ours."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("base64") from None
        if not raw or len(raw) % 16:
            raise CryptoError("length")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).decryptor()
        plain = unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CryptoError("length")
        (size,) = struct.unpack(">I", plain[16:20])
        if 20 + size > len(plain):
            raise CryptoError("length")
        message, receive_id = plain[20 : 20 + size], plain[20 + size :]
        if receive_id != self.receive_id.encode("utf-8"):
            raise CryptoError("receive_id")
        return message

    def encrypt(self, message: bytes, *, random16: bytes | None = None) -> str:
        """base64 of the encrypted ``message`` (what WeCom sends; the fake server and tests use it)."""
        prefix = random16 if random16 is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode("utf-8")
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).encryptor()
        return base64.b64encode(encryptor.update(pad(plain)) + encryptor.finalize()).decode("ascii")

    def callback_body(self, xml: str, *, to_user: str | None = None, agent_id: str | None = None) -> str:
        """The POST body WeCom sends for ``xml``: the outer XML with the Encrypt element."""
        encrypted = self.encrypt(xml.encode("utf-8"))
        agent = f"<AgentID><![CDATA[{agent_id}]]></AgentID>" if agent_id else ""
        return (
            f"<xml><ToUserName><![CDATA[{to_user or self.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>{agent}</xml>"
        )


def parse_xml(data: bytes | str) -> dict[str, Any]:
    """A WeCom XML message as a dict: each child of <xml> by its tag; an element with children
    (``MemChangeList``) as the list of its children's texts. No DTDs or entities are accepted."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise CryptoError("xml")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise CryptoError("xml") from None
    if root.tag != "xml":
        raise CryptoError("xml")
    out: dict[str, Any] = {}
    for child in root:
        if len(child):
            out[child.tag] = [(item.text or "").strip() for item in child]
        else:
            out[child.tag] = (child.text or "").strip()
    return out
