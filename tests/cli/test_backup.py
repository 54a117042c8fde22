"""``luser db backup`` / ``luser db restore``: a pg_dump / pg_restore round trip."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg

Luser = Callable[..., subprocess.CompletedProcess[str]]


async def test_backup_then_restore_brings_the_data_back(
    luser: Luser, fresh_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_url)
    try:
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute("INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 500) g")
        dump = tmp_path / "luser.dump"
        result = luser("db", "backup", str(dump))
        assert result.returncode == 0, result.stderr
        assert dump.stat().st_size > 0
        # Damage after the backup: rows changed, rows gone, a table dropped.
        await conn.execute("UPDATE kept SET note = 'changed' WHERE id <= 10")
        await conn.execute("DELETE FROM kept WHERE id > 400")
        result = luser("db", "restore", str(dump), "--yes")
        assert result.returncode == 0, result.stderr
        rows = await conn.fetch("SELECT id, note FROM kept ORDER BY id")
        assert [(r["id"], r["note"]) for r in rows] == [(g, f"row {g}") for g in range(1, 501)]
        await conn.execute("DROP TABLE kept")
        result = luser("db", "restore", str(dump), "--yes")
        assert result.returncode == 0, result.stderr
        assert await conn.fetchval("SELECT count(*) FROM kept") == 500
    finally:
        await conn.close()


def test_restore_of_a_file_that_is_not_a_backup_fails_cleanly(luser: Luser, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-dump"
    bogus.write_text("hello")
    result = luser("db", "restore", str(bogus), "--yes")
    assert result.returncode != 0
    assert "pg_restore 失败" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
