"""Field values are checked at assignment; custom column types go through the codec registry."""

from __future__ import annotations

import enum
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from luser_common import ConfigError, ValidationError
from luser_db import Db, Field, Model, register_type, unregister_type
from luser_db.types import codec_for

pytestmark = pytest.mark.usefixtures("orm_schema", "db_tx")


@dataclass(frozen=True)
class Money:
    """An amount in integer fen (分): never a float."""

    fen: int


@dataclass(frozen=True)
class SkuCode:
    code: str


class Address(pydantic.BaseModel):
    city: str
    street: str


register_type(Money, pg_type="bigint", to_db=lambda m: m.fen, from_db=Money)
register_type(ipaddress.IPv4Address, pg_type="inet")
register_type(SkuCode, pg_type="text", to_db=lambda s: s.code, from_db=SkuCode)
register_type(
    Address,
    pg_type="jsonb",
    to_db=lambda a: a.model_dump(mode="json"),
    from_db=Address.model_validate,
)


class Shop(Model, table="orm.shops"):
    id: int = Field(primary_key=True)
    price: Money
    prices: list[Money] | None = None
    ip: ipaddress.IPv4Address | None = None
    address: Address | None = None
    data: dict[str, Any] | None = None
    items: list[Any] | None = None
    tags: list[str] | None = None
    counts: list[int] | None = None
    extra: Any = None
    legacy: dict[str, Any] | None = Field(default=None, pg_type="json")


class Sku(Model, table="orm.skus"):
    code: SkuCode = Field(primary_key=True)
    stock: int = 0


@pytest.fixture(autouse=True)
async def _table(db_tx: Any) -> None:
    await Db.execute(
        "create table orm.shops (id bigserial primary key, price bigint not null,"
        " prices bigint[], ip inet, address jsonb, data jsonb, items jsonb, tags text[],"
        " counts bigint[], extra jsonb, legacy json)"
    )
    await Db.execute("create table orm.skus (code text primary key, stock int not null)")


# -- values are refused at construction and assignment (issue 13) -----------------------

NOT_JSON = [
    {"when": datetime.now(UTC)},
    {"x": object()},
    {1: "int key"},
    {"x": math.nan},
    {"x": {1, 2}},
    {"x": [b"bytes"]},
]


@pytest.mark.parametrize(
    "value", NOT_JSON, ids=["datetime", "object", "int-key", "nan", "set", "bytes"]
)
@pytest.mark.parametrize("name", ["data", "items", "extra", "legacy"])
async def test_non_json_value_is_refused_at_construction_and_assignment(
    name: str, value: Any
) -> None:
    stored = [value] if name == "items" else value
    with pytest.raises(ValidationError) as err:
        Shop(price=Money(1), **{name: stored})
    assert err.value.field == name and "JSON" in err.value.message
    shop = Shop(price=Money(1))
    with pytest.raises(ValidationError):
        setattr(shop, name, stored)
    await shop.save()
    with pytest.raises(ValidationError):
        await Shop.query().where("id = ?", shop.id).update(**{name: stored})
    assert await Db.find("select data, items, extra, legacy from orm.shops") == [
        {"data": None, "items": None, "extra": None, "legacy": None}
    ]


async def test_deeply_nested_json_is_a_validation_error_not_a_recursion_error() -> None:
    deep: Any = "leaf"
    for _ in range(30_000):
        deep = [deep]
    with pytest.raises(ValidationError):
        Shop(price=Money(1), data={"deep": deep})


@pytest.mark.parametrize(
    ("name", "value"),
    [("tags", ["a", 1]), ("tags", ("a", b"b")), ("counts", [1, True]), ("counts", [1, "2"])],
)
def test_list_elements_are_checked(name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as err:
        Shop(price=Money(1), **{name: value})
    assert err.value.field == name and "元素" in err.value.message
    shop = Shop(price=Money(1))
    with pytest.raises(ValidationError):
        setattr(shop, name, value)


async def test_json_values_that_fit_round_trip() -> None:
    class Level(enum.IntEnum):
        HIGH = 2

    data = {"a": [1, 2.5, None, True, {"b": "中文"}], "level": Level.HIGH, "t": (1, 2)}
    shop = Shop(price=Money(1), data=data, items=[{"k": 1}], tags=["x", None], counts=[1, 2])
    await shop.save()
    again = await Shop.find_by_id(shop.id)
    assert again is not None
    assert again.data == {"a": [1, 2.5, None, True, {"b": "中文"}], "level": 2, "t": [1, 2]}
    assert (again.items, again.tags, again.counts) == ([{"k": 1}], ["x", None], [1, 2])


# -- the codec registry (issue 16) -------------------------------------------------------


async def test_custom_types_round_trip_on_every_path() -> None:
    home = Address(city="杭州", street="文三路")
    shop = Shop(
        price=Money(1999),
        prices=[Money(1), Money(2)],
        ip=ipaddress.IPv4Address("10.0.0.1"),
        address=home,
    )
    await shop.save()
    stored = await Db.find_first("select price, prices, address from orm.shops")
    assert stored is not None
    assert (stored["price"], stored["prices"]) == (1999, [1, 2])
    assert stored["address"] == {"city": "杭州", "street": "文三路"}

    first = await Shop.query().where(id=shop.id).first()  # first()'s one-row path
    assert first is not None and (first.price, first.address) == (Money(1999), home)
    found = await Shop.find_by_id(shop.id)
    assert found is not None
    assert (found.price, found.prices, found.address) == (
        Money(1999),
        [Money(1), Money(2)],
        home,
    )
    assert found.ip == ipaddress.IPv4Address("10.0.0.1")
    [queried] = await Shop.query().where("ip <<= ?::inet", "10.0.0.0/8").all()
    assert queried.price == Money(1999) and queried.address == home
    [raw] = await Shop.find("select * from orm.shops")
    assert raw.price == Money(1999)

    found.price = Money(2500)
    assert await found.update()
    assert await Db.query_int("select price from orm.shops") == 2500
    await Shop.query().where("id = ?", shop.id).update(price=Money(3000))
    assert await Db.query_int("select price from orm.shops") == 3000

    upserted = Shop(id=shop.id, price=Money(10), address=Address(city="北京", street="长安街"))
    assert await upserted.upsert()
    assert upserted.price == Money(10) and upserted.address == Address(city="北京", street="长安街")
    assert await Shop.batch_save([Shop(price=Money(7)), Shop(price=Money(8))]) == 2
    assert await Db.query_int("select sum(price) from orm.shops") == 25


def test_custom_type_is_checked_at_assignment() -> None:
    with pytest.raises(ValidationError) as err:
        Shop(price=1999)
    assert err.value.field == "price" and "Money" in err.value.message
    with pytest.raises(ValidationError):
        Shop(price=Money(1), prices=[Money(1), 2])


def test_builtin_types_are_registry_entries() -> None:
    int_codec = codec_for(int)
    assert int_codec is not None and int_codec.builtin and int_codec.pg_type == "bigint"
    fields = Shop._meta.fields
    assert fields["price"].pg_type == "bigint"
    assert fields["prices"].pg_type == "bigint[]"
    assert fields["ip"].pg_type == "inet"
    assert fields["address"].pg_type == "jsonb"


@pytest.mark.parametrize("builtin", [int, str, dict, datetime])
def test_registering_a_builtin_type_is_refused(builtin: type) -> None:
    with pytest.raises(ConfigError) as err:
        register_type(builtin, pg_type="text")
    assert builtin.__name__ in err.value.message and "内置" in err.value.message
    assert codec_for(builtin) is not None and codec_for(builtin).builtin  # type: ignore[union-attr]


def test_registration_mistakes_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        register_type(Money, pg_type="numeric")  # registered above: needs replace=True
    with pytest.raises(ConfigError):
        register_type(list, pg_type="text[]")

    class Celsius(float):
        pass

    with pytest.raises(ConfigError):
        register_type(Celsius, pg_type="real; drop table orm.users")
    register_type(Celsius, pg_type="double precision")
    register_type(Celsius, pg_type="real", replace=True)
    assert codec_for(Celsius).pg_type == "real"  # type: ignore[union-attr]
    unregister_type(Celsius)
    assert codec_for(Celsius) is None


def test_an_unregistered_annotation_is_refused_when_the_class_is_created() -> None:
    class Point:
        pass

    with pytest.raises(TypeError, match="register_type"):

        class Bad(Model, table="orm.bad"):
            id: int = Field(primary_key=True)
            where: Point

    class Explicit(Model, table="orm.bad"):
        id: int = Field(primary_key=True)
        where: Point = Field(pg_type="point")

    assert Explicit._meta.fields["where"].pg_type == "point"


async def test_a_custom_type_as_primary_key() -> None:
    await Sku.batch_save([Sku(code=SkuCode("a"), stock=1), Sku(code=SkuCode("b"), stock=2)])
    found = await Sku.find_by_id(SkuCode("b"))
    assert found is not None and found.code == SkuCode("b") and found.stock == 2
    many = await Sku.find_by_ids([SkuCode("b"), SkuCode("x"), SkuCode("a")])
    assert [s.code for s in many] == [SkuCode("b"), SkuCode("a")]
    found.stock = 5
    assert await found.update()
    assert await found.delete()
    assert await Db.find("select code, stock from orm.skus") == [{"code": "a", "stock": 1}]
