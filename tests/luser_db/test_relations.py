"""Relations: include() loads each path with one batched query; unloaded access is an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from luser_common import AppError, ValidationError
from luser_db import Db, Field, Model, belongs_to, has_many, has_one, many_to_many
from luser_db.relations import RelationNotLoaded, preload
from luser_db.testing import assert_queries

SCHEMA = """
DROP SCHEMA IF EXISTS rel CASCADE;
CREATE SCHEMA rel;
CREATE TABLE rel.author (id bigserial PRIMARY KEY, name text NOT NULL,
                         manager_id bigint REFERENCES rel.author(id));
CREATE TABLE rel.post (id bigserial PRIMARY KEY, author_id bigint REFERENCES rel.author(id),
                       title text NOT NULL);
CREATE TABLE rel.comment (id bigserial PRIMARY KEY, post_id bigint NOT NULL REFERENCES rel.post(id),
                          author_id bigint REFERENCES rel.author(id), body text NOT NULL,
                          deleted_at timestamptz);
CREATE TABLE rel.cover (id bigserial PRIMARY KEY, post_id bigint NOT NULL, url text NOT NULL);
CREATE TABLE rel.tag (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE rel.post_tags (post_id bigint NOT NULL, tag_id bigint NOT NULL,
                            PRIMARY KEY (post_id, tag_id));
"""


class Author(Model, table="rel.author"):
    id: int = Field(primary_key=True)
    name: str
    manager_id: int | None = None
    manager = belongs_to("Author")
    posts = has_many("Post")


class Post(Model, table="rel.post"):
    id: int = Field(primary_key=True)
    author_id: int | None = None
    title: str
    author = belongs_to(Author)
    comments = has_many("Comment")
    cover = has_one("Cover")
    tags = many_to_many("Tag", through="rel.post_tags")


class Comment(Model, table="rel.comment", soft_delete=True):
    id: int = Field(primary_key=True)
    post_id: int
    author_id: int | None = None
    body: str
    deleted_at: datetime | None = None
    author = belongs_to(Author)
    post = belongs_to(Post)


class Cover(Model, table="rel.cover"):
    id: int = Field(primary_key=True)
    post_id: int
    url: str


class Tag(Model, table="rel.tag"):
    id: int = Field(primary_key=True)
    name: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rel_schema(db_pool: str) -> AsyncIterator[str]:
    conn = await asyncpg.connect(db_pool)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()
    yield db_pool
    conn = await asyncpg.connect(db_pool)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS rel CASCADE")
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def blog(rel_schema: str, db_tx: Any) -> dict[str, Any]:
    """Two authors (bob managed by ann), three posts, comments (one soft-deleted), tags."""
    ann = Author(name="ann")
    await ann.save()
    bob = Author(name="bob", manager_id=ann.id)
    await bob.save()
    posts = []
    for i, author in enumerate([ann, ann, bob]):
        p = Post(title=f"p{i}", author_id=author.id)
        await p.save()
        posts.append(p)
    await Comment(post_id=posts[0].id, author_id=bob.id, body="c1").save()
    await Comment(post_id=posts[0].id, author_id=ann.id, body="c2").save()
    gone = Comment(post_id=posts[1].id, author_id=bob.id, body="deleted")
    await gone.save()
    await gone.delete()
    await Cover(post_id=posts[0].id, url="u0").save()
    red, blue = Tag(name="red"), Tag(name="blue")
    await red.save()
    await blue.save()
    for post, tag in [(posts[0], red), (posts[0], blue), (posts[2], red)]:
        await Db.execute("insert into rel.post_tags values (?, ?)", post.id, tag.id)
    return {"ann": ann, "bob": bob, "posts": posts, "red": red, "blue": blue}


async def test_each_relation_kind_loads_with_one_query(blog: dict[str, Any]) -> None:
    q = Post.query().order_by("id").include("author", "comments.author", "cover", "tags")
    with assert_queries(6):  # posts, authors, comments, comment authors, covers, tags
        posts = await q.all()
    p0, p1, p2 = posts
    assert p0.author is not None and p0.author.name == "ann"
    assert p2.author is not None and p2.author.name == "bob"
    assert p0.author is p1.author  # one object per target row
    assert [c.body for c in p0.comments] == ["c1", "c2"]
    assert [c.author.name for c in p0.comments if c.author] == ["bob", "ann"]
    assert p1.comments == []  # its only comment is soft-deleted
    assert p0.cover is not None and p0.cover.url == "u0"
    assert p1.cover is None
    assert sorted(t.name for t in p0.tags) == ["blue", "red"]
    assert [t.name for t in p2.tags] == ["red"]
    assert p0.tags[0] is p2.tags[0] or p0.tags[1] is p2.tags[0]
    assert p1.tags == []


async def test_relation_not_included_raises_naming_include(blog: dict[str, Any]) -> None:
    post = await Post.query().order_by("id").first()
    assert post is not None
    with pytest.raises(RelationNotLoaded) as info:
        _ = post.author
    assert 'include("author")' in info.value.message
    assert isinstance(info.value, AppError)
    with assert_queries(0), pytest.raises(RelationNotLoaded):
        _ = post.comments


async def test_include_over_1000_parents_costs_two_queries(rel_schema: str, db_tx: Any) -> None:
    ann = Author(name="ann")
    await ann.save()
    await Post.batch_save([Post(title=f"t{i}", author_id=ann.id) for i in range(1000)])
    with assert_queries(2) as log:
        posts = await Post.query().include("author").all()
    assert len(posts) == 1000
    assert all(p.author is not None and p.author.id == ann.id for p in posts)
    assert "= ANY($1)" in log.statements[1]


async def test_unknown_relation_lists_known_ones(rel_schema: str) -> None:
    with pytest.raises(ValidationError) as info:
        Post.query().include("autor")
    assert info.value.status_code == 422
    for known in ("author", "comments", "cover", "tags"):
        assert known in info.value.message
    with pytest.raises(ValidationError, match="没有关联"):
        Post.query().include("comments.nope")


async def test_cycle_in_nested_include_is_rejected(rel_schema: str) -> None:
    with pytest.raises(ValidationError, match="循环"):
        Post.query().include("comments.post")
    with pytest.raises(ValidationError, match="循环"):
        Author.query().include("posts.author")
    Author.query().include("manager.manager")  # a self relation is not a cycle


async def test_self_relation_and_string_targets(blog: dict[str, Any]) -> None:
    authors = await Author.query().order_by("id").include("manager", "posts").all()
    ann, bob = authors
    assert ann.manager is None
    assert bob.manager is not None and bob.manager.id == ann.id
    assert [p.title for p in ann.posts] == ["p0", "p1"]


async def test_include_with_paginate_iterate_first_and_using(blog: dict[str, Any]) -> None:
    q = Post.query().order_by("id").include("author")
    with assert_queries(3):  # count, page, authors
        page = await q.paginate(1, 2)
    assert [p.author.name for p in page.items if p.author] == ["ann", "ann"]
    seen = []
    async with aclosing(q.iterate(batch=2)) as rows:
        async for post in rows:
            seen.append(post.author.name if post.author else None)
    assert seen == ["ann", "ann", "bob"]
    first = await q.using("default").where(title="p2").first()
    assert first is not None and first.author is not None and first.author.name == "bob"


async def test_preload_models_in_hand(blog: dict[str, Any]) -> None:
    post = await Post.find_by_id(blog["posts"][0].id)
    assert post is not None
    with assert_queries(2):
        await preload([post], "tags", "comments")
    assert len(post.tags) == 2 and len(post.comments) == 2


async def test_include_needs_the_key_column(blog: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="author_id"):
        await Post.query().select("id", "title").include("author").all()


def test_a_wrong_foreign_key_is_a_declaration_error(rel_schema: str) -> None:
    class Orphan(Model, table="rel.post"):
        id: int = Field(primary_key=True)
        title: str
        writer = belongs_to(Author)

    with pytest.raises(TypeError, match="writer_id"):
        Orphan.query().include("writer")
    with pytest.raises(TypeError, match="foreign_key"):
        _ = Orphan.writer.foreign_key


class ReplicaAuthor(Model, table="rel.author", source="replica"):
    id: int = Field(primary_key=True)
    name: str


class ReplicaPost(Model, table="rel.post"):
    id: int = Field(primary_key=True)
    author_id: int | None = None
    title: str
    author = belongs_to(Author)
    replica_author = belongs_to(ReplicaAuthor, foreign_key="author_id")


@pytest_asyncio.fixture(loop_scope="session")
async def committed_post(rel_schema: str) -> AsyncIterator[int]:
    """A committed author and post (id of the author), removed after the test.

    Requested before ``db_tx`` so that its cleanup runs after the test transaction
    has rolled back and released its row locks.
    """
    conn = await asyncpg.connect(rel_schema)
    try:
        author_id = await conn.fetchval(
            "insert into rel.author (name) values ('stored') returning id"
        )
        await conn.execute("insert into rel.post (author_id, title) values ($1, 'x')", author_id)
        yield author_id
    finally:
        await conn.execute("delete from rel.post where author_id = $1", author_id)
        await conn.execute("delete from rel.author where id = $1", author_id)
        await conn.close()


async def test_related_rows_come_from_the_right_data_source(
    rel_schema: str, committed_post: int, db_tx: Any
) -> None:
    """A second source on the same database sees committed rows only, never db_tx's edits."""
    import luser_db

    luser_db.init(rel_schema, name="replica", min_size=0, max_size=2)
    await Db.execute("update rel.author set name = 'uncommitted' where id = ?", committed_post)

    post = await ReplicaPost.query().using("replica").include("author").first()
    assert post is not None and post.author is not None
    assert post.author.name == "stored"  # the parents' source carried over

    post = await ReplicaPost.query().include("author", "replica_author").first()
    assert post is not None and post.author is not None and post.replica_author is not None
    assert post.author.name == "uncommitted"  # default source: the test transaction
    assert post.replica_author.name == "stored"  # the target declares its own source
