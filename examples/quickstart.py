"""luser_db in five minutes: models, queries, raw SQL, transactions, errors.

    python examples/quickstart.py

Uses the configured database (``LUSER__DATABASE__URL`` or ``config/*.toml``); with
none configured it starts the embedded PostgreSQL. Creates and drops its own
table ``example_users``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import luser_db
from luser_common import DuplicateError, ValidationError
from luser_db import Db, Field, Model, Record, transaction


class User(Model, table="example_users"):
    id: int = Field(primary_key=True)
    name: str
    email: str
    age: int = 0
    profile: dict | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


SCHEMA = """
CREATE TABLE example_users (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL CONSTRAINT example_users_email_key UNIQUE,
    age int NOT NULL DEFAULT 0,
    profile jsonb,
    created_at timestamptz,
    updated_at timestamptz
)
"""


async def main() -> None:
    await Db.execute("DROP TABLE IF EXISTS example_users")
    await Db.execute(SCHEMA)
    try:
        await tour()
    finally:
        await Db.execute("DROP TABLE IF EXISTS example_users")
        await luser_db.close()


async def tour() -> None:
    # create / read / update
    ann = User(name="ann", email="ann@example.com", age=30, profile={"city": "Hangzhou"})
    await ann.save()
    print("saved", ann.id, ann.created_at)
    ann.age = 31
    print("update wrote something:", await ann.update(), "| again:", await ann.update())
    for i in range(25):
        await User(name=f"user{i}", email=f"user{i}@example.com", age=15 + i).save()

    # queries: immutable builders, awaited terminals
    adults = User.query().where("age >= ?", 18)
    page = await adults.order_by("age desc").paginate(1, 10)
    print(f"page 1/{page.total_page}: {[u.name for u in page.items][:3]}... of {page.total_row}")
    print("kids:", await User.query().where("age < ?", 18).count())
    print("in:", [u.name for u in await User.query().where_in("id", [1, 2, 3]).order_by("id")])
    print("sql:", adults.order_by("-id").limit(5).to_sql())

    # raw SQL into models, extra columns kept
    rows = await User.find(
        "select *, age / 10 as decade from example_users where age > ? order by id", 35
    )
    print("decades:", sorted({r.get("decade") for r in rows}))

    # Db + Record without a model
    rec = await Db.find_first("select count(*) as n, max(age) as oldest from example_users")
    assert rec is not None
    print("count:", rec.n, "oldest:", rec["oldest"])
    bob = Record(name="bob", email="bob@example.com")
    await Db.save("example_users", bob)
    print("bob got id", bob.id)

    # a transaction: everything inside uses one connection; an exception rolls back
    try:
        async with transaction():
            await User.query().where(name="bob").update(age=99)
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    print("bob's age after rollback:", (await User.query().where(name="bob").first()).age)  # type: ignore[union-attr]

    # errors are luser_common errors, raised before SQL when the input is bad
    try:
        await User(name="dup", email="ann@example.com").save()
    except DuplicateError as e:
        print("duplicate:", e.code, e.status_code, e.details)
    try:
        User.query().order_by("age; drop table example_users")
    except ValidationError as e:
        print("rejected:", e.code, e.field)


if __name__ == "__main__":
    asyncio.run(main())
