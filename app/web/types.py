"""Constrained input types shared by every request model.

PostgreSQL rejects NUL characters and Python lets lone surrogates into ``str``;
both would otherwise reach the driver and fail as a 500, so inputs refuse them here.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_BIGINT = 2**63 - 1


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("不能包含 NUL 字符")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("必须是有效的 UTF-8 文本") from exc
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
Id = Annotated[int, Field(ge=1, le=MAX_BIGINT)]


class Input(BaseModel):
    """Base of request bodies and query strings: strict about unknown keys, trims strings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Patch(Input):
    """Base of partial updates: absent fields stay unchanged; ``null`` is accepted only
    for the fields named in ``nullable`` (columns that may be NULL)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _null_only_where_allowed(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("不能为 null")
        return value


class QueryInput(BaseModel):
    """Base of query-string models: unknown parameters are ignored, as browsers add some."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Output(BaseModel):
    """Base of response payloads, built from models with ``from_attributes``."""

    model_config = ConfigDict(from_attributes=True)
