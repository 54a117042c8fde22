"""ENC(...) tokens and key rings."""

from __future__ import annotations

import base64

import pytest

from luser_common import EncryptionError
from luser_config import KeyRing, generate_key, is_encrypted


def test_roundtrip_and_token_shape() -> None:
    ring = KeyRing.parse(generate_key("a"))
    token = ring.encrypt("s3cret", "auth.secret")
    assert is_encrypted(token) and token.startswith("ENC(a:")
    assert "s3cret" not in token
    assert ring.decrypt(token, "auth.secret") == "s3cret"
    blob = base64.b64decode(token[len("ENC(a:") : -1])
    assert len(blob) == 12 + len("s3cret") + 16  # nonce + ciphertext + tag


def test_each_encryption_uses_a_fresh_nonce() -> None:
    ring = KeyRing.parse(generate_key("a"))
    assert ring.encrypt("x", "k") != ring.encrypt("x", "k")


def test_aad_binds_the_key_path() -> None:
    ring = KeyRing.parse(generate_key("a"))
    token = ring.encrypt("s3cret", "auth.secret")
    with pytest.raises(EncryptionError) as info:
        ring.decrypt(token, "redis.password")
    assert "redis.password" in info.value.message
    assert "s3cret" not in str(info.value)


def test_ring_first_key_encrypts_all_decrypt() -> None:
    old, new = generate_key("old"), generate_key("new")
    token_old = KeyRing.parse(old).encrypt("v", "k")
    ring = KeyRing.parse(f"{new},{old}")
    assert ring.primary_kid == "new"
    assert ring.decrypt(token_old, "k") == "v"
    assert ring.encrypt("v", "k").startswith("ENC(new:")


def test_unknown_kid_and_tampering_are_errors() -> None:
    ring = KeyRing.parse(generate_key("a"))
    other = KeyRing.parse(generate_key("b"))
    with pytest.raises(EncryptionError, match="b"):
        ring.decrypt(other.encrypt("v", "k"), "k")
    token = ring.encrypt("value", "k")
    raw = bytearray(base64.b64decode(token[6:-1]))
    raw[-1] ^= 1
    with pytest.raises(EncryptionError, match="解密失败"):
        ring.decrypt(f"ENC(a:{base64.b64encode(bytes(raw)).decode()})", "k")
    with pytest.raises(EncryptionError, match="格式错误"):
        ring.decrypt("ENC(garbage)", "k")


def test_bare_key_gets_a_stable_fingerprint_kid() -> None:
    material = generate_key("x").split(":", 1)[1]
    assert KeyRing.parse(material).kids == KeyRing.parse(material).kids
    assert KeyRing.parse(material).primary_kid.startswith("k")


@pytest.mark.parametrize("bad", ["a:not base64!", "a:" + base64.b64encode(b"short").decode(), ""])
def test_bad_key_material(bad: str) -> None:
    with pytest.raises(EncryptionError):
        KeyRing.parse(bad)


def test_repr_never_shows_key_material() -> None:
    text = generate_key("a")
    ring = KeyRing.parse(text)
    assert text.split(":", 1)[1] not in repr(ring)
    assert repr(ring) == "KeyRing(kids=['a'])"


def test_duplicate_kid_refused() -> None:
    with pytest.raises(EncryptionError, match="重复"):
        KeyRing.parse(f"{generate_key('a')},{generate_key('a')}")


def test_key_file_and_env(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = generate_key("f")
    path = tmp_path / "keys"
    path.write_text(f"# current\n{key}\n")
    assert KeyRing.from_file(path).kids == ["f"]
    assert KeyRing.from_env() is None
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY_FILE", str(path))
    assert KeyRing.from_env().kids == ["f"]  # type: ignore[union-attr]
    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", generate_key("e"))
    assert KeyRing.from_env().kids == ["e"]  # type: ignore[union-attr]
