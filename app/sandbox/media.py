"""The sandbox's one real video (a 3-second MP4 shipped as package data), served with
HTTP Range support the way a CDN serves it: browsers' ``<video>`` asks for byte ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

__all__ = ["DEMO_VIDEO_PATH", "MediaReply", "demo_video", "serve_bytes"]

# Where the sandbox VOD stand-ins serve the file (their "CDN" path).
DEMO_VIDEO_PATH = "/media/demo.mp4"
DEMO_DURATION_SECONDS = 3

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@cache
def demo_video() -> bytes:
    """The shipped MP4 (generated once with ffmpeg; nothing needs ffmpeg at run time)."""
    return resources.files("app.sandbox").joinpath("media/demo.mp4").read_bytes()


@dataclass(frozen=True)
class MediaReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def serve_bytes(data: bytes, range_header: str | None) -> MediaReply:
    """200 with the whole body, 206 with one requested range, 416 when it is unsatisfiable.

    Only the first range of a multi-range request is served (as a single part), which
    is what every player asks for anyway.
    """
    size = len(data)
    headers = {"Accept-Ranges": "bytes"}
    if not range_header:
        return MediaReply(200, data, headers)
    match = _RANGE.fullmatch(range_header.split(",", 1)[0].strip())
    if match is None or match.group(1) == match.group(2) == "":
        return MediaReply(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
    first, last = match.group(1), match.group(2)
    if first == "":  # a suffix: the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return MediaReply(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return MediaReply(206, data[start : end + 1], headers)
