"""Normalise RSA keys from config into the PEM forms both SDKs accept.

Alipay's key tool hands out bare base64 (PKCS#1 or PKCS#8 private keys, SPKI
public keys); pycryptodome needs PEM headers, and wechatpayv3 only wraps bare
keys as ``BEGIN PRIVATE KEY`` (so a PKCS#1 PEM would break it). Loading and
re-serialising with ``cryptography`` accepts all of these, validates the key
at startup, and yields PKCS#8 / SPKI PEM.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from luser_common.errors import ConfigError

__all__ = ["private_key_pem", "public_key_pem"]


def _der(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)


def private_key_pem(text: str, field: str) -> str:
    """PEM or bare base64 RSA private key -> PKCS#8 PEM; ConfigError if unusable."""
    text = text.strip()
    if not text:
        raise ConfigError(f"缺少支付私钥配置: {field}", field=field)
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_der_private_key(_der(text), password=None)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(f"支付私钥无法解析: {field}", field=field) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"支付私钥必须是 RSA 密钥: {field}", field=field)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_pem(text: str, field: str) -> str:
    """PEM or bare base64 RSA public key -> SPKI PEM; ConfigError if unusable."""
    text = text.strip()
    if not text:
        raise ConfigError(f"缺少支付公钥配置: {field}", field=field)
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_der(text))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(f"支付公钥无法解析: {field}", field=field) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"支付公钥必须是 RSA 密钥: {field}", field=field)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
