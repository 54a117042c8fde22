"""``ENC(kid:base64(nonce12 || ciphertext+tag))`` tokens: AES-256-GCM with a key ring.

The dotted key name is the AAD, so a token copied under another key fails to
decrypt instead of silently moving a secret. The key id inside the token lets
several keys coexist: the first key of the ring encrypts, every key decrypts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from luser_common import EncryptionError

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "KeyRing",
    "generate_key",
    "is_encrypted",
]

ENV_KEY = "LUSER_ENCRYPTION_KEY"
ENV_KEY_FILE = "LUSER_ENCRYPTION_KEY_FILE"

_TOKEN = re.compile(r"^ENC\(([A-Za-z0-9_.-]+):([A-Za-z0-9+/=_-]+)\)$")
# Tokens inside TOML text; base64 never contains quotes, so this cannot overrun a string.
TOKEN_IN_TEXT = re.compile(r"ENC\([A-Za-z0-9_.-]+:[A-Za-z0-9+/=_-]+\)")
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NONCE = 12
UNBOUND = ""  # the key path of a token made without one (`luser config encrypt VALUE`)


def is_encrypted(value: object) -> bool:
    """Whether ``value`` is an ``ENC(...)`` token."""
    return isinstance(value, str) and value.startswith("ENC(") and value.endswith(")")


def generate_key(kid: str | None = None) -> str:
    """A new random key as ``kid:base64``; the kid defaults to a date-free random id."""
    kid = kid or f"k{secrets.token_hex(3)}"
    _check_kid(kid)
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _check_kid(kid: str) -> None:
    if not _KID.match(kid):
        raise EncryptionError(f"密钥 ID 不合法: {kid!r} (只允许字母、数字、_ . -, 最长 64)")


def _decode_key(material: str, where: str) -> bytes:
    # Accept both the standard and the URL-safe alphabet, padded or not.
    text = material.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptionError(f"{where}: 密钥不是合法的 base64") from exc
    if len(raw) != 32:
        raise EncryptionError(f"{where}: AES-256 密钥必须是 32 字节 (实际 {len(raw)} 字节)")
    return raw


def _fingerprint(key: bytes) -> str:
    return "k" + hashlib.sha256(key).hexdigest()[:8]


@dataclass(frozen=True)
class _Key:
    kid: str
    key: bytes

    def __repr__(self) -> str:  # never show key material
        return f"_Key(kid={self.kid!r})"


class KeyRing:
    """Ordered keys: the first encrypts, all decrypt. ``repr`` shows key ids only."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys = [_Key(kid, key) for kid, key in keys]
        seen: set[str] = set()
        for k in self._keys:
            _check_kid(k.kid)
            if k.kid in seen:
                raise EncryptionError(f"密钥 ID 重复: {k.kid}")
            seen.add(k.kid)

    @classmethod
    def parse(cls, text: str, where: str = ENV_KEY) -> KeyRing:
        """Parse ``kid:base64key,kid2:base64key`` (commas or newlines), or one bare key."""
        items = [
            p.strip()
            for p in re.split(r"[,\n]", text)
            if p.strip() and not p.strip().startswith("#")
        ]
        if not items:
            raise EncryptionError(f"{where}: 没有任何密钥")
        keys: list[tuple[str, bytes]] = []
        for i, item in enumerate(items, 1):
            label = f"{where} 第 {i} 个密钥"
            if ":" in item:
                kid, material = item.split(":", 1)
                keys.append((kid.strip(), _decode_key(material, label)))
            else:
                key = _decode_key(item, label)
                keys.append((_fingerprint(key), key))
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise EncryptionError(f"无法读取密钥文件: {p}") from exc
        return cls.parse(text, where=f"密钥文件 {p}")

    @classmethod
    def from_env(cls) -> KeyRing | None:
        """The ring from ``LUSER_ENCRYPTION_KEY`` or ``LUSER_ENCRYPTION_KEY_FILE``, if set."""
        text = os.environ.get(ENV_KEY, "").strip()
        if text:
            return cls.parse(text)
        path = os.environ.get(ENV_KEY_FILE, "").strip()
        return cls.from_file(path) if path else None

    @property
    def primary_kid(self) -> str:
        return self._keys[0].kid

    @property
    def kids(self) -> list[str]:
        return [k.kid for k in self._keys]

    def __iter__(self) -> Iterator[str]:
        return iter(self.kids)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(kids={self.kids!r})"

    def with_primary(self, other: KeyRing) -> KeyRing:
        """``other``'s keys first, then this ring's keys not already present."""
        known = set(other.kids)
        pairs = [(k.kid, k.key) for k in other._keys]
        pairs += [(k.kid, k.key) for k in self._keys if k.kid not in known]
        return KeyRing(pairs)

    def export(self) -> str:
        """The ring as ``kid:base64,...`` (for LUSER_ENCRYPTION_KEY). Contains key material."""
        return ",".join(f"{k.kid}:{base64.b64encode(k.key).decode()}" for k in self._keys)

    def encrypt(self, plaintext: str, key_path: str = UNBOUND) -> str:
        """Encrypt under the primary key, bound to ``key_path`` (the AAD).

        Bound, the token decrypts only as the value of ``key_path``: copied into another
        key it fails. ``UNBOUND`` (no key) gives a token valid under any key.
        """
        k = self._keys[0]
        nonce = os.urandom(_NONCE)
        ct = AESGCM(k.key).encrypt(nonce, plaintext.encode("utf-8"), key_path.encode("utf-8"))
        return f"ENC({k.kid}:{base64.b64encode(nonce + ct).decode()})"

    def decrypt(self, token: str, key_path: str) -> str:
        """Decrypt a token stored under ``key_path``; errors never contain the value."""
        kid, blob = _split_token(token, key_path)
        key = next((k.key for k in self._keys if k.kid == kid), None)
        if key is None:
            raise EncryptionError(
                f"{key_path}: 没有密钥 ID 为 {kid} 的密钥 (当前密钥: {', '.join(self.kids)})",
                field=key_path,
            )
        for aad in dict.fromkeys((key_path, UNBOUND)):  # bound to this key, or to none
            try:
                plain = AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad.encode("utf-8"))
            except InvalidTag:
                continue
            return plain.decode("utf-8")
        raise EncryptionError(
            f"{key_path}: 解密失败 (密钥 {kid} 不匹配, 或密文被篡改/复制自其他配置项)",
            field=key_path,
        )

    def key_id_of(self, token: str, key_path: str = "?") -> str:
        return _split_token(token, key_path)[0]


def _split_token(token: str, key_path: str) -> tuple[str, bytes]:
    m = _TOKEN.match(token.strip())
    if not m:
        raise EncryptionError(
            f"{key_path}: 加密值格式错误, 应为 ENC(密钥ID:base64)", field=key_path
        )
    try:
        blob = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptionError(f"{key_path}: 加密值不是合法的 base64", field=key_path) from exc
    if len(blob) < _NONCE + 16:
        raise EncryptionError(f"{key_path}: 加密值长度不足", field=key_path)
    return m.group(1), blob
