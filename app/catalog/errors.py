"""The catalog's errors: luser_common classes with a more precise stable code."""

from __future__ import annotations

from luser_common import Conflict, Forbidden


class PreviewNotAvailable(Forbidden):
    code = "PREVIEW_NOT_AVAILABLE"
    default_message = "该视频需要订阅后观看, 且不提供试看"


class InvalidState(Conflict):
    code = "INVALID_STATE"
    default_message = "当前状态不允许此操作"


class CategoryInUse(Conflict):
    """Videos still belong to the category: move or delete them first."""

    code = "CATEGORY_IN_USE"
    default_message = "该分类下仍有视频, 请先移走或删除这些视频"
