"""Chinese messages for pydantic's validation errors, chosen by error type.

pydantic writes English ("Field required") and shows patterns as raw regular
expressions; a user must read neither. Each error ``type`` maps to a template
filled from the error's ``ctx``. A ``ValueError`` raised by our own validators
already carries a Chinese message and is shown as is; any type not listed here
falls back to a generic Chinese sentence, never to pydantic's English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["validation_message"]

_TEMPLATES: Mapping[str, str] = {
    "missing": "必填",
    "extra_forbidden": "是不允许的字段",
    "unexpected_keyword_argument": "是不允许的字段",
    "string_type": "必须是字符串",
    "string_too_short": "长度至少为 {min_length} 个字符",
    "string_too_long": "长度不能超过 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确",
    "string_unicode": "必须是有效的 UTF-8 文本",
    "int_type": "必须是整数",
    "int_parsing": "必须是整数",
    "int_parsing_size": "超出整数范围",
    "int_from_float": "必须是整数, 不能带小数",
    "float_type": "必须是数字",
    "float_parsing": "必须是数字",
    "finite_number": "必须是有限的数字",
    "decimal_type": "必须是数字",
    "decimal_parsing": "必须是数字",
    "decimal_max_digits": "数字总位数不能超过 {max_digits} 位",
    "decimal_max_places": "小数位数不能超过 {decimal_places} 位",
    "decimal_whole_digits": "整数部分不能超过 {whole_digits} 位",
    "decimal_not_finite": "必须是有限的数字",
    "bool_type": "必须是布尔值 (true/false)",
    "bool_parsing": "必须是布尔值 (true/false)",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "不能大于 {le}",
    "multiple_of": "必须是 {multiple_of} 的倍数",
    "literal_error": "必须是以下之一: {expected}",
    "enum": "必须是以下之一: {expected}",
    "list_type": "必须是数组",
    "tuple_type": "必须是数组",
    "set_type": "必须是数组",
    "frozen_set_type": "必须是数组",
    "too_short": "至少需要 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "dict_type": "必须是对象",
    "model_type": "必须是对象",
    "model_attributes_type": "必须是对象",
    "dataclass_type": "必须是对象",
    "none_required": "必须为 null",
    "datetime_type": "必须是日期时间 (ISO 8601)",
    "datetime_parsing": "必须是日期时间 (ISO 8601)",
    "datetime_from_date_parsing": "必须是日期时间 (ISO 8601)",
    "datetime_object_invalid": "必须是日期时间 (ISO 8601)",
    "timezone_aware": "必须带时区",
    "timezone_naive": "不能带时区",
    "date_type": "必须是日期 (YYYY-MM-DD)",
    "date_parsing": "必须是日期 (YYYY-MM-DD)",
    "date_from_datetime_parsing": "必须是日期 (YYYY-MM-DD)",
    "date_from_datetime_inexact": "必须是日期 (YYYY-MM-DD), 不能带时间",
    "time_type": "必须是时间 (HH:MM:SS)",
    "time_parsing": "必须是时间 (HH:MM:SS)",
    "time_delta_type": "必须是时长",
    "time_delta_parsing": "必须是时长",
    "uuid_type": "必须是 UUID",
    "uuid_parsing": "必须是 UUID",
    "url_type": "必须是网址",
    "url_parsing": "必须是有效的网址",
    "url_scheme": "网址协议必须是 {expected_schemes}",
    "url_too_long": "网址不能超过 {max_length} 个字符",
    "bytes_type": "必须是字符串",
    "bytes_too_short": "长度至少为 {min_length} 字节",
    "bytes_too_long": "长度不能超过 {max_length} 字节",
    "json_invalid": "必须是合法的 JSON",
    "json_type": "必须是 JSON 文本",
    "union_tag_invalid": "类型标记无效, 可选: {expected_tags}",
    "union_tag_not_found": "缺少类型标记 {discriminator}",
    "frozen_field": "不可修改",
    "frozen_instance": "不可修改",
    "recursion_loop": "嵌套过深",
    "is_instance_of": "类型不正确",
    "callable_type": "类型不正确",
}
_GENERIC = "取值无效"


def _readable(value: Any) -> str:
    # pydantic's "'a' or 'b'" lists (literal_error, enum) read as "'a', 'b'".
    return str(value).replace(" or ", ", ")


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _own_message(error: Mapping[str, Any]) -> str | None:
    """Our validators' own Chinese text: a raised ValueError's, or a custom error's."""
    cause = (error.get("ctx") or {}).get("error")
    for text in (str(cause) if cause is not None else "", str(error.get("msg", ""))):
        if _is_chinese(text):
            return text
    return None


def validation_message(error: Mapping[str, Any]) -> str:
    """Chinese text for one entry of ``pydantic.ValidationError.errors()``."""
    kind = str(error.get("type", ""))
    if kind in ("value_error", "assertion_error"):
        return _own_message(error) or _GENERIC
    template = _TEMPLATES.get(kind)
    if template is None:
        return _own_message(error) or _GENERIC
    ctx = {key: _readable(value) for key, value in (error.get("ctx") or {}).items()}
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):  # a pydantic version with other ctx keys
        return _GENERIC
