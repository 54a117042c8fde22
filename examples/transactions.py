"""Transactions: savepoints, on_commit callbacks, a retried serialization conflict, and
the shared-connection guard.

    python examples/transactions.py
"""

from __future__ import annotations

import asyncio

import luser_db
from luser_common import ValidationError
from luser_db import (
    Db,
    Field,
    Model,
    SharedConnectionError,
    on_commit,
    on_rollback,
    retry_transaction,
    transaction,
    transactional,
)


class Account(Model, table="example_accounts"):
    id: int = Field(primary_key=True, generated=False)
    owner: str
    balance: int = 0


async def main() -> None:
    await Db.execute("DROP TABLE IF EXISTS example_accounts")
    await Db.execute(
        "CREATE TABLE example_accounts (id int PRIMARY KEY, owner text NOT NULL,"
        " balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0))"
    )
    try:
        await Account(id=1, owner="ann", balance=100).save()
        await Account(id=2, owner="bob", balance=0).save()
        await savepoints()
        await callbacks()
        await retried()
        await shared_connection_guard()
    finally:
        await Db.execute("DROP TABLE IF EXISTS example_accounts")
        await luser_db.close()


@transactional
async def transfer(src: int, dst: int, amount: int) -> None:
    """Both updates commit together or not at all."""
    source = await Account.query().where(id=src).for_update().first()
    assert source is not None
    source.balance -= amount
    await source.update()  # the CHECK constraint rejects overdrafts
    await Db.execute("update example_accounts set balance = balance + ? where id = ?", amount, dst)


async def savepoints() -> None:
    async with transaction():
        await transfer(1, 2, 30)  # nested: runs in a savepoint
        try:
            async with transaction():
                await transfer(1, 2, 1_000)  # overdraft -> ValidationError, savepoint rolled back
        except ValidationError as e:
            print("inner transfer refused:", type(e).__name__, getattr(e, "field", None))
    print("balances:", await Account.query().order_by("id").pluck("balance"))


async def callbacks() -> None:
    async with transaction():
        on_commit(lambda: print("on_commit: send the receipt e-mail now"))
        await transfer(2, 1, 5)
    try:
        async with transaction():
            on_rollback(lambda: print("on_rollback: release the reservation"))
            raise RuntimeError("abort")
    except RuntimeError:
        pass


async def retried() -> None:
    """Two serializable transactions collide; the loser is retried with backoff."""
    tries = {"n": 0}
    read = asyncio.Event()

    async def add_interest() -> None:
        tries["n"] += 1
        account = await Account.find_by_id(1)
        assert account is not None
        if tries["n"] == 1:
            read.set()
            await asyncio.sleep(0.2)  # let the other writer commit meanwhile
        account.balance += 1
        await account.update()

    async def other_writer() -> None:
        await read.wait()
        await Db.execute("update example_accounts set balance = balance + 10 where id = 1")

    await asyncio.gather(retry_transaction(add_interest), other_writer())
    account = await Account.find_by_id(1)
    assert account is not None
    print(f"interest added after {tries['n']} attempts; balance:", account.balance)


async def shared_connection_guard() -> None:
    try:
        async with transaction():
            await asyncio.gather(Account.find_by_id(1), Account.find_by_id(2))
    except SharedConnectionError as e:
        print("guard:", e.code)
    # the fix: run concurrent reads outside the transaction
    a, b = await asyncio.gather(Account.find_by_id(1), Account.find_by_id(2))
    print("outside a transaction:", a.owner, b.owner)  # type: ignore[union-attr]


if __name__ == "__main__":
    asyncio.run(main())
