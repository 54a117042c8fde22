"""``luser config ...`` run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from luser_common import EncryptionError
from luser_config import KeyRing, generate_key

REPO = Path(__file__).resolve().parents[2]
SERVICE_CONFIG = str(REPO / "app" / "config")  # the service's packaged config folder


def _luser() -> list[str]:
    exe = shutil.which("luser") or str(Path(sys.executable).parent / "luser")
    return [exe, "config"] if Path(exe).exists() else [sys.executable, "-m", "luser_config"]


# The real `luser` entry point imports the whole service; most tests use the same click
# group through `python -m luser_config`, and a few go through `luser` itself.
FAST = [sys.executable, "-m", "luser_config"]


def run(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path = REPO,
    full: bool = False,
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("LUSER_") and not k.upper().startswith("LUSER__")
    }
    base.update(env or {})
    command = _luser() if full else FAST
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=base,
        input=stdin,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_show_test_env_redacts_secrets_and_names_sources() -> None:
    result = run("show", "--env", "test", "--format", "json", full=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["env"]["value"] == "test"
    assert data["server.port"] == {"value": 8001, "source": "test.toml:5"}
    assert data["jwt.secret"]["value"] == "******"
    assert "test-jwt-secret" not in result.stdout
    table = run("show", "--env", "test", env={"LUSER__SERVER__PORT": "9100"})
    assert table.returncode == 0, table.stderr
    assert "9100" in table.stdout and "env:LUSER__SERVER__PORT" in table.stdout
    assert "test-jwt-secret" not in table.stdout


def test_show_hides_sections_the_schema_does_not_know() -> None:
    generic = run("show", "--env", "test", "--config-dir", SERVICE_CONFIG, "--format", "json")
    assert generic.returncode == 0, generic.stderr
    data = json.loads(generic.stdout)
    assert data["vod.default_provider"]["value"] == "******"  # not in Settings: hidden
    assert data["server.port"]["value"] == 8001
    assert "vod" in generic.stderr and "--schema" in generic.stderr
    named = run(
        "--schema",
        "app.settings:app_schema",
        "show",
        "--env",
        "test",
        "--config-dir",
        SERVICE_CONFIG,
        "--format",
        "json",
    )
    assert named.returncode == 0, named.stderr
    shown = json.loads(named.stdout)
    assert shown["vod.default_provider"]["value"] == "tencent"
    assert shown["jwt.secret"]["value"] == "******"
    assert named.stderr == ""


def test_show_reports_errors_with_exit_code(tmp_path: Path) -> None:
    (tmp_path / "default.toml").write_text("[server]\nport = 0\n")
    result = run("show", "--env", "test", "--config-dir", str(tmp_path))
    assert result.returncode == 1
    assert "CONFIG_ERROR" in result.stderr and "server.port" in result.stderr


def test_gen_key_encrypt_decrypt_roundtrip() -> None:
    key = run("gen-key", "--kid", "cli", full=True).stdout.strip()
    assert key.startswith("cli:") and KeyRing.parse(key).kids == ["cli"]
    env = {"LUSER_ENCRYPTION_KEY": key}
    token = run("encrypt", "-k", "auth.secret", "p@ss word", env=env, full=True).stdout.strip()
    assert token.startswith("ENC(cli:")
    back = run("decrypt", "-k", "auth.secret", token, env=env, full=True)
    assert back.returncode == 0 and back.stdout == "p@ss word\n"
    from_stdin = run("encrypt", "-k", "redis.password", env=env, stdin="piped\n").stdout.strip()
    assert KeyRing.parse(key).decrypt(from_stdin, "redis.password") == "piped"
    wrong = run("decrypt", "-k", "redis.password", token, env=env)
    assert wrong.returncode == 1 and "ENCRYPTION_ERROR" in wrong.stderr
    assert "p@ss word" not in wrong.stderr + wrong.stdout


def test_encrypt_without_key_fails_clearly(tmp_path: Path) -> None:
    result = run("encrypt", "-k", "auth.secret", "x", cwd=tmp_path)
    assert result.returncode == 1 and "LUSER_ENCRYPTION_KEY" in result.stderr


@pytest.mark.parametrize("with_key_file", [False, True])
def test_rotate_key_command(tmp_path: Path, with_key_file: bool) -> None:
    old = generate_key("old")
    ring = KeyRing.parse(old)
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "default.toml").write_text(
        f'# keep\n[auth]\nsecret = "{ring.encrypt("s1", "auth.secret")}"  # and this\n'
    )
    env = {"LUSER_CONFIG_DIR": str(cfg)}
    args = ["rotate-key", "--kid", "new"]
    if with_key_file:
        (tmp_path / "keys").write_text(old)
        args += ["--key-file", str(tmp_path / "keys")]
    else:
        env["LUSER_ENCRYPTION_KEY"] = old
    result = run(*args, env=env, full=with_key_file)
    assert result.returncode == 0, result.stderr
    new_ring = KeyRing.parse(result.stdout.strip())
    assert new_ring.kids == ["new", "old"]
    text = (cfg / "default.toml").read_text()
    assert "# keep" in text and "# and this" in text and "ENC(new:" in text
    shown = run(
        "show",
        "--env",
        "test",
        "--format",
        "json",
        env={**env, "LUSER_ENCRYPTION_KEY": result.stdout.strip()},
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["auth.secret"]["value"] == "******"


def test_docs_check_passes_on_the_repository() -> None:
    # docs/config.md documents the service's sections too: the service's CLI registers
    # its schema, and `python -m luser_config` takes it with --schema.
    result = run("docs", "--check", full=True)
    assert result.returncode == 0, result.stderr
    named = run("--schema", "app.settings:app_schema", "docs", "--check")
    assert named.returncode == 0, named.stderr
    generic_only = run("docs", "--check")
    assert generic_only.returncode == 1 and "已过期" in generic_only.stderr


def test_schema_option_refuses_what_is_not_a_settings_class() -> None:
    result = run("--schema", "luser_config.schema:RedisConfig", "show")
    assert result.returncode == 2 and "luser_config.Settings" in result.stderr
    result = run("--schema", "no_such_module:X", "show")
    assert result.returncode == 2 and "no_such_module" in result.stderr


def test_show_with_database_rows(tmp_path: Path, database_url: str) -> None:
    import asyncio

    from luser_config import DatabaseSource

    asyncio.run(DatabaseSource(database_url, "test", "cli_cfg").put("server.workers", 7))
    (tmp_path / "default.toml").write_text("")
    result = run(
        "show",
        "--env",
        "test",
        "--config-dir",
        str(tmp_path),
        "--with-db",
        "--dsn",
        database_url,
        "--table",
        "cli_cfg",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["server.workers"]["value"] == 7


def test_encrypt_without_a_config_key_uses_the_environment_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key("env")
    env = {"LUSER_ENCRYPTION_KEY": key}
    result = run("encrypt", "s3cret value", env=env, cwd=tmp_path, full=True)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("ENC(env:")
    # Not bound to a key: it decrypts wherever it is put, and a config file loads it.
    assert KeyRing.parse(key).decrypt(token, "auth.secret") == "s3cret value"
    assert run("decrypt", "-k", "redis.password", token, env=env).stdout == ("s3cret value\n")
    config = tmp_path / "config"
    config.mkdir()
    (config / "default.toml").write_text(f'[auth]\nsecret = "{token}"\n')
    from luser_config import load_config

    monkeypatch.setenv("LUSER_ENCRYPTION_KEY", key)
    assert load_config("test", config).auth.secret.get_secret_value() == "s3cret value"


def test_a_bound_token_still_refuses_another_key() -> None:
    ring = KeyRing.parse(generate_key("b"))
    token = ring.encrypt("v", "auth.secret")
    with pytest.raises(EncryptionError, match="解密失败"):
        ring.decrypt(token, "redis.password")
