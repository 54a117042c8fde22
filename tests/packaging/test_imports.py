"""``import luser_db, luser_config, luser_common`` loads none of the service's packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .isolation import NOT_IN_BASE, run

PROBE = (
    "import json, sys, luser_db, luser_config, luser_common; print(json.dumps(sorted(sys.modules)))"
)


def test_the_libraries_import_no_service_package(tmp_path: Path) -> None:
    result = run([sys.executable, "-c", PROBE], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = {name.partition(".")[0] for name in json.loads(result.stdout)}
    assert {"luser_db", "luser_config", "luser_common", "asyncpg"} <= loaded
    assert loaded.isdisjoint(NOT_IN_BASE), sorted(loaded & set(NOT_IN_BASE))


def test_old_names_still_reach_the_web_helpers() -> None:
    # luser_common re-exports them lazily: the same objects, loaded on first use.
    import luser_common
    from luser_common.http import success
    from luser_common.jwt_codec import JwtCodec
    from luser_common.utils import passwords

    assert luser_common.success is success
    assert luser_common.JwtCodec is JwtCodec
    assert luser_common.hash_password is passwords.hash_password
    assert luser_common.utils.verify_password is passwords.verify_password
    assert {"success", "JwtCodec", "hash_password"} <= set(luser_common.__all__)
