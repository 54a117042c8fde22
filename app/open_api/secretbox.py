"""Channel credentials at rest: AES-256-GCM, bound to the channel name as AAD."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from luser_common import EncryptionError

__all__ = ["SecretBox"]

_PREFIX = "v1:"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise EncryptionError("通道凭证密钥必须是 32 字节")
        self._aead = AESGCM(key)

    @classmethod
    def from_config(cls, channel_secret_key: str, pepper: bytes) -> SecretBox:
        """The configured base64 key, or one derived from the pepper (development)."""
        if channel_secret_key:
            try:
                key = base64.b64decode(channel_secret_key, validate=True)
            except ValueError as exc:
                raise EncryptionError("open_api.channel_secret_key 不是有效的 base64") from exc
            return cls(key)
        return cls(hashlib.sha256(b"luser-open-api-channel-key\0" + pepper).digest())

    def seal(self, value: dict[str, Any], aad: str) -> str:
        nonce = os.urandom(12)
        data = self._aead.encrypt(nonce, json.dumps(value).encode(), aad.encode())
        return _PREFIX + base64.b64encode(nonce + data).decode()

    def open(self, sealed: str, aad: str) -> dict[str, Any]:
        if not sealed:
            return {}
        if not sealed.startswith(_PREFIX):
            raise EncryptionError("通道凭证格式无效")
        raw = base64.b64decode(sealed[len(_PREFIX) :])
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], aad.encode())
        except InvalidTag as exc:
            raise EncryptionError("通道凭证解密失败") from exc
        value: dict[str, Any] = json.loads(plain)
        return value
