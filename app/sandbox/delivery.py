"""How the sandbox's stand-ins deliver what a provider sends the service by itself:
payment notifications and VOD event callbacks, POSTed over real HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request

__all__ = ["NOTIFY_TIMEOUT_SECONDS", "post"]

NOTIFY_TIMEOUT_SECONDS = 10


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST a notification as the provider would; (status, reply text), 0 if unreachable."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_SECONDS) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")
    except OSError as exc:
        return 0, str(exc)
