"""Catalog: categories, admin video lifecycle, the public list and detail."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from luser_db import Db, current_connection, transaction

from .conftest import Account, MakeAccount, error_code


async def _category(api: httpx.AsyncClient, admin: Account) -> dict[str, Any]:
    slug = f"c-{uuid.uuid4().hex[:10]}"
    r = await api.post(
        "/api/admin/categories", headers=admin.headers, json={"name": f"分类 {slug}", "slug": slug}
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["data"])


async def _video(
    api: httpx.AsyncClient, admin: Account, publish: bool = True, **fields: Any
) -> dict[str, Any]:
    body = {
        "title": f"视频 {uuid.uuid4().hex[:8]}",
        "media_id": f"m-{uuid.uuid4().hex}",
        "duration_seconds": 120,
        **fields,
    }
    r = await api.post("/api/admin/videos", headers=admin.headers, json=body)
    assert r.status_code == 201, r.text
    video = dict(r.json()["data"])
    if publish:
        r = await api.post(f"/api/admin/videos/{video['id']}/publish", headers=admin.headers)
        assert r.status_code == 200, r.text
        video = dict(r.json()["data"])
    return video


async def test_category_crud(api: httpx.AsyncClient, admin: Account) -> None:
    cat = await _category(api, admin)
    r = await api.post(
        "/api/admin/categories", headers=admin.headers, json={"name": "dup", "slug": cat["slug"]}
    )
    assert r.status_code == 409
    r = await api.patch(
        f"/api/admin/categories/{cat['id']}",
        headers=admin.headers,
        json={"name": "改名", "sort_order": -1},
    )
    assert r.status_code == 200 and r.json()["data"]["name"] == "改名"
    listed = (await api.get("/api/categories")).json()["data"]
    assert any(c["id"] == cat["id"] for c in listed)
    r = await api.post(
        "/api/admin/categories", headers=admin.headers, json={"name": "bad", "slug": "Not A Slug"}
    )
    assert r.status_code == 422
    r = await api.delete(f"/api/admin/categories/{cat['id']}", headers=admin.headers)
    assert r.status_code == 200
    r = await api.delete(f"/api/admin/categories/{cat['id']}", headers=admin.headers)
    assert r.status_code == 404


async def test_deleting_a_category_in_use_is_409(api: httpx.AsyncClient, admin: Account) -> None:
    # It used to succeed and silently orphan the videos (category_id set to NULL).
    cat = await _category(api, admin)
    video = await _video(api, admin, publish=False, category_id=cat["id"])
    url = f"/api/admin/categories/{cat['id']}"
    r = await api.delete(url, headers=admin.headers)
    assert r.status_code == 409 and error_code(r) == "CATEGORY_IN_USE"
    assert r.json()["error"]["details"] == {"videos": 1}
    row = await Db.find_first("select category_id from videos where id = ?", video["id"])
    assert row is not None and row["category_id"] == cat["id"]
    # Once the video is deleted (soft), the category may go.
    r = await api.delete(f"/api/admin/videos/{video['id']}", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await api.delete(url, headers=admin.headers)).status_code == 200


async def test_admin_routes_need_an_admin(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    user = await make_account()
    r = await api.post("/api/admin/videos", headers=user.headers, json={"title": "x"})
    assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    r = await api.get("/api/admin/videos")
    assert r.status_code == 401


async def test_video_lifecycle_and_visibility(api: httpx.AsyncClient, admin: Account) -> None:
    cat = await _category(api, admin)
    draft = await _video(api, admin, publish=False, category_id=cat["id"])
    assert draft["status"] == "draft" and draft["media_status"] == "ready"
    vid = draft["id"]
    assert (await api.get(f"/api/videos/{vid}")).status_code == 404  # drafts are hidden
    r = await api.patch(
        f"/api/admin/videos/{vid}",
        headers=admin.headers,
        json={"description": "新的简介", "preview_seconds": 30},
    )
    assert r.status_code == 200 and r.json()["data"]["description"] == "新的简介"
    r = await api.post(f"/api/admin/videos/{vid}/publish", headers=admin.headers)
    assert r.status_code == 200 and r.json()["data"]["published_at"]
    r = await api.post(f"/api/admin/videos/{vid}/publish", headers=admin.headers)
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"
    public = (await api.get(f"/api/videos/{vid}")).json()["data"]
    assert public["description"] == "新的简介" and "media_id" not in public
    r = await api.post(f"/api/admin/videos/{vid}/offline", headers=admin.headers)
    assert r.status_code == 200 and r.json()["data"]["status"] == "offline"
    assert (await api.get(f"/api/videos/{vid}")).status_code == 404
    r = await api.post(f"/api/admin/videos/{vid}/offline", headers=admin.headers)
    assert r.status_code == 409
    r = await api.delete(f"/api/admin/videos/{vid}", headers=admin.headers)
    assert r.status_code == 200
    assert (await api.get(f"/api/admin/videos/{vid}", headers=admin.headers)).status_code == 404
    rec = await Db.find_first("select deleted_at from videos where id = ?", vid)
    assert rec is not None and rec["deleted_at"] is not None  # soft delete


async def test_publish_requires_ready_media(api: httpx.AsyncClient, admin: Account) -> None:
    video = await _video(api, admin, publish=False, media_id=None)
    r = await api.post(f"/api/admin/videos/{video['id']}/publish", headers=admin.headers)
    assert r.status_code == 409 and error_code(r) == "INVALID_STATE"


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "ok", "provider": "youtube"},
        {"title": "ok", "duration_seconds": -1},
        {"title": "ok", "required_level": 10**12},
        {"title": "ok", "category_id": 0},
        {"title": "ok", "category_id": 987654321},
        {"title": "ok", "status": "published"},
    ],
)
async def test_bad_video_bodies(
    api: httpx.AsyncClient, admin: Account, body: dict[str, Any]
) -> None:
    r = await api.post("/api/admin/videos", headers=admin.headers, json=body)
    assert r.status_code == 422, r.text


async def test_public_list_filters_sorts_and_paginates(
    api: httpx.AsyncClient, admin: Account
) -> None:
    cat = await _category(api, admin)
    tag = uuid.uuid4().hex[:8]
    made = [
        await _video(api, admin, category_id=cat["id"], title=f"{tag} {name}", duration_seconds=d)
        for name, d in (("Bravo", 30), ("Alpha", 90), ("Charlie", 60))
    ]
    await _video(api, admin, publish=False, category_id=cat["id"], title=f"{tag} draft")
    r = await api.get("/api/videos", params={"category_id": cat["id"], "size": 2})
    page = r.json()["data"]
    assert r.status_code == 200 and page["total_row"] == 3 and page["total_page"] == 2
    assert [v["id"] for v in page["items"]] == [made[2]["id"], made[1]["id"]]  # newest first
    r = await api.get("/api/videos", params={"category_id": cat["id"], "page": 2, "size": 2})
    assert [v["id"] for v in r.json()["data"]["items"]] == [made[0]["id"]]
    by_title = (await api.get("/api/videos", params={"q": tag, "sort": "title"})).json()["data"]
    assert [v["title"].split()[1] for v in by_title["items"]] == ["Alpha", "Bravo", "Charlie"]
    by_len = (await api.get("/api/videos", params={"q": tag, "sort": "duration"})).json()["data"]
    assert [v["duration_seconds"] for v in by_len["items"]] == [30, 60, 90]
    oldest = (await api.get("/api/videos", params={"q": tag, "sort": "oldest"})).json()["data"]
    assert oldest["items"][0]["id"] == made[0]["id"]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "id; drop table videos"},
        {"page": 0},
        {"page": "abc"},
        {"size": 1000},
        {"category_id": -5},
        {"q": "x" * 101},
        {"q": "bad\u0000byte"},
    ],
)
async def test_bad_list_queries_are_422(api: httpx.AsyncClient, params: dict[str, Any]) -> None:
    r = await api.get("/api/videos", params=params)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "term",
    [
        "' or '1'='1",
        "'; drop table videos; --",
        "%",
        "_",
        "\\",
        "<script>alert(1)</script>",
        "%' union select * from users --",
        "☃",
    ],
)
async def test_search_is_injection_safe(api: httpx.AsyncClient, admin: Account, term: str) -> None:
    # Seeded rows make every assertion bite: an empty result (a broken search, a
    # swallowed error) fails here instead of letting the loop assert nothing.
    tag = uuid.uuid4().hex[:10]
    hit = await _video(api, admin, title=f"{tag} {term}")
    other = await _video(api, admin, title=f"{tag} 无关的视频 100 done")

    async def search(q: str) -> list[dict[str, Any]]:
        r = await api.get("/api/videos", params={"q": q, "size": 100})
        assert r.status_code == 200, r.text
        return list(r.json()["data"]["items"])

    assert {v["id"] for v in await search(tag)} == {hit["id"], other["id"]}  # benign query
    assert [v["id"] for v in await search(f"{tag} {term}")] == [hit["id"]]  # literal match
    found = await search(term)
    assert hit["id"] in {v["id"] for v in found} and other["id"] not in {v["id"] for v in found}
    for item in found:
        assert term.lower() in (item["title"] + (item["description"] or "")).lower()
    r = await api.get("/api/admin/videos", headers=admin.headers, params={"q": f"{tag} {term}"})
    assert r.status_code == 200 and [v["id"] for v in r.json()["data"]["items"]] == [hit["id"]]
    # Nothing was dropped or rewritten: the seeded rows and the users table are intact.
    assert {v["id"] for v in await search(tag)} == {hit["id"], other["id"]}
    assert (await Db.query_int("select count(*) from users where id = ?", admin.id)) == 1


async def test_like_wildcards_match_literally(api: httpx.AsyncClient, admin: Account) -> None:
    tag = uuid.uuid4().hex[:8]
    hit = await _video(api, admin, title=f"{tag} 100%_done")
    await _video(api, admin, title=f"{tag} 100xxdone")
    items = (await api.get("/api/videos", params={"q": f"{tag} 100%_"})).json()["data"]["items"]
    assert [v["id"] for v in items] == [hit["id"]]


@pytest.mark.parametrize("path_id", ["0", "-1", "abc", "99999999999999999999", "1.5"])
async def test_bad_ids_are_not_found(api: httpx.AsyncClient, path_id: str) -> None:
    r = await api.get(f"/api/videos/{path_id}")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"


async def test_admin_list_shows_every_status(api: httpx.AsyncClient, admin: Account) -> None:
    tag = uuid.uuid4().hex[:8]
    await _video(api, admin, title=f"{tag} a")
    await _video(api, admin, publish=False, title=f"{tag} b")
    r = await api.get("/api/admin/videos", headers=admin.headers, params={"q": tag})
    assert r.json()["data"]["total_row"] == 2
    r = await api.get(
        "/api/admin/videos", headers=admin.headers, params={"q": tag, "status": "draft"}
    )
    assert [v["title"] for v in r.json()["data"]["items"]] == [f"{tag} b"]


async def test_patch_null_only_where_allowed(api: httpx.AsyncClient, admin: Account) -> None:
    cat = await _category(api, admin)
    video = await _video(api, admin, publish=False, category_id=cat["id"])
    url = f"/api/admin/videos/{video['id']}"
    r = await api.patch(url, headers=admin.headers, json={"title": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "title"
    r = await api.patch(url, headers=admin.headers, json={"category_id": None})
    assert r.status_code == 200 and r.json()["data"]["category_id"] is None
    r = await api.patch(url, headers=admin.headers, json={})
    assert r.status_code == 200 and r.json()["data"]["title"] == video["title"]


@pytest.mark.parametrize(
    "category_id, index",
    [(None, "videos_public_newest_idx"), (1, "videos_public_category_idx")],
)
async def test_public_list_uses_the_partial_indexes(
    service_app: Starlette, category_id: int | None, index: str
) -> None:
    catalog = service_app.state.services.catalog
    query = catalog.public_query()
    if category_id is not None:
        query = query.where("category_id = ?", category_id)
    sql, params = query.order_by("published_at desc", "id desc").limit(20).to_sql()
    args = ", ".join(str(p) for p in params)
    async with transaction():
        # A generic plan is what a reused prepared statement gets; the partial index
        # must still apply. Few test rows would otherwise favour a sequential scan.
        conn = current_connection()
        await conn.execute("set local plan_cache_mode = force_generic_plan")
        await conn.execute("set local enable_seqscan = off")
        await conn.execute(f"prepare public_list as {sql}")
        try:
            rows = await conn.fetch(f"explain execute public_list({args})")
        finally:
            await conn.execute("deallocate public_list")
        plan = "\n".join(r[0] for r in rows)
    assert index in plan, plan
