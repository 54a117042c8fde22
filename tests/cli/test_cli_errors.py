"""The CLI's error contract: one line on stderr, exit 1 for luser errors, 2 for the unexpected."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from luser_common import NotFound
from luser_db.cli import cli_errors


@click.command()
@click.argument("kind")
@cli_errors
def boom(kind: str) -> None:
    if kind == "app":
        raise NotFound("迁移不存在\n第二行")
    if kind == "bug":
        raise RuntimeError("something\nbroke")
    if kind == "abort":
        raise click.Abort()
    click.echo("ok")


@pytest.mark.parametrize(
    ("kind", "code", "line"),
    [
        ("app", 1, "错误: 迁移不存在 第二行"),
        ("bug", 2, "错误: 意外错误 (RuntimeError): something broke"),
    ],
)
def test_errors_are_one_line(kind: str, code: int, line: str) -> None:
    result = CliRunner().invoke(boom, [kind])
    assert result.exit_code == code
    assert result.stderr.strip().splitlines() == [line]


def test_click_exceptions_pass_through() -> None:
    assert CliRunner().invoke(boom, ["abort"]).exit_code == 1
    assert CliRunner().invoke(boom, ["fine"]).output == "ok\n"
