"""Plumbing shared by the operator commands (``luser users|videos|plans|...``).

Each command validates its options with the same pydantic models the admin API
uses, calls the same service function as the admin route, and prints the result
as a rich table or, with ``--json``, as the API's JSON shape. Failures go through
``cli_errors``: one Chinese line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click
import pydantic
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from app.settings import AppConfig
from luser_common import AppError, Page

__all__ = ["ID", "AdminContext", "emit", "emit_page", "json_option", "run", "validated"]

PIPE_WIDTH = 240
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# A row id: what the API accepts in a path (a positive bigint).
ID = click.IntRange(1, 2**63 - 1)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@dataclass
class AdminContext:
    """What a command's job gets: the config and the services the admin routes use."""

    config: AppConfig

    @functools.cached_property
    def services(self) -> Any:
        from app.container import Services
        from app.vod import VodRegistry

        return Services.build(self.config, VodRegistry(self.config.vod))

    @functools.cached_property
    def commerce(self) -> Any:
        from app.commerce.service import Commerce

        return Commerce.build(self.config)


def run(job: Callable[[AdminContext], Awaitable[T]]) -> T:
    """Run ``job`` on a fresh event loop with the configured database, then close it."""
    return asyncio.run(_run(job))


async def _run(job: Callable[[AdminContext], Awaitable[T]]) -> T:
    import luser_db
    from app.lifespan import init_database
    from luser_config import load_config

    config = load_config(schema=AppConfig)
    init_database(config)
    context = AdminContext(config)
    try:
        return await job(context)
    finally:
        if "services" in context.__dict__:
            await context.services.aclose()
        await luser_db.close()


def validated(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` (options that were given) through the API's input model; errors in Chinese."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except pydantic.ValidationError as exc:
        raise AppError.from_exception(exc) from exc


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | bytes):
        return str(value)
    raise TypeError(f"cannot print {type(value).__name__}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=_plain)
    return str(value)


def emit(
    data: Any, *, as_json: bool, columns: Sequence[str] | None = None, title: str = ""
) -> None:
    """Print one object (a two-column table) or a list of objects (one row each)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_plain))
        return
    # A pipe or a file gets full rows: wrapping to 80 columns would cut values off.
    console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
    if isinstance(data, Mapping):
        table = _table(("字段", "值"), title)
        for key, value in data.items():
            table.add_row(str(key), _cell(value))
    else:
        rows = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in data]
        names = list(columns or (rows[0].keys() if rows else ()))
        table = _table(names, title)
        for row in rows:
            table.add_row(*(_cell(row.get(name)) for name in names))
    console.print(table)


def _table(names: Sequence[str], title: str) -> Table:
    table = Table(title=title or None)
    for name in names:
        table.add_column(name, overflow="fold")  # long values wrap, never "…"
    return table


def emit_page(
    page: Page[Any], item: type[BaseModel], *, as_json: bool, columns: Sequence[str]
) -> None:
    """A page in the API's envelope (``--json``) or as a table with the totals below."""
    shaped = page.to_dict(lambda row: item.model_validate(row).model_dump(mode="json"))
    if as_json:
        emit(shaped, as_json=True)
        return
    emit(shaped["items"], as_json=False, columns=columns)
    where = f"第 {page.page_number}/{page.total_page} 页"
    click.echo(f"{where}, 共 {page.total_row} 条 (每页 {page.page_size})")
