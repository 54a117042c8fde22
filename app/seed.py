"""Development demo data: categories, published videos, plans and an admin account.

Idempotent: does nothing when categories already exist. Never run in production
(``luser serve`` only seeds when ``env == "development"``). In sandbox mode every
video's media id plays the sandbox's demo video, and the plans can be bought with
the sandbox's Alipay and WeChat Pay.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from app.accounts.models import User
from app.accounts.service import Accounts
from app.catalog.category import Category
from app.catalog.models import Video
from app.catalog.status import MediaState, VideoStatus
from app.commerce.models import Plan
from app.container import Services
from app.settings import AppConfig
from luser_db import transaction

T = TypeVar("T")

logger = logging.getLogger("luser.seed")

ADMIN_ACCOUNT = "admin@luser.local"
DEFAULT_ADMIN_PASSWORD = "Luser-demo-2026"  # development only; override with the env var

CATEGORIES = [
    ("纪录片", "documentary"),
    ("动画", "animation"),
    ("科技", "technology"),
    ("旅行", "travel"),
    ("美食", "food"),
]
TITLES = [
    "长江源头行",
    "城市夜景延时",
    "深海探秘",
    "草原四季",
    "小猫的一天",
    "机器人入门",
    "星空摄影指南",
    "川菜十二味",
    "丝绸之路",
    "极光之旅",
    "手冲咖啡基础",
    "像素动画短片",
    "量子计算科普",
    "江南古镇",
    "高原铁路",
    "面点师傅",
    "雨林里的声音",
    "编程五分钟",
    "黄山云海",
    "家常早餐",
]
# (name, description, level, duration_days, price_fen): level 1 unlocks every member video.
PLANS = [
    ("月度会员", "30 天观看全部会员视频", 1, 30, 2500),
    ("年度会员", "365 天观看全部会员视频, 更优惠", 1, 365, 19800),
]


async def seed_demo_data(accounts: Accounts) -> bool:
    """Insert the demo rows; False when the database already has categories."""
    if await Category.query().count() > 0:
        return False
    password = os.environ.get("LUSER_SEED_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    async with transaction():
        if (
            await User.find_first("select * from users where lower(email) = ?", ADMIN_ACCOUNT)
            is None
        ):
            await accounts.create_admin(ADMIN_ACCOUNT, password, "管理员")
        categories = []
        for order, (name, slug) in enumerate(CATEGORIES):
            category = Category(name=name, slug=slug, sort_order=order)
            await category.save()
            categories.append(category)
        now = datetime.now(UTC)
        for i, title in enumerate(TITLES):
            await Video(
                category_id=categories[i % len(categories)].id,
                title=title,
                description=f"{title}: 演示视频 #{i + 1}",
                cover_url=f"https://example.invalid/covers/{i + 1}.jpg",
                duration_seconds=60 * (3 + i % 17),
                provider="tencent" if i % 2 == 0 else "aliyun",
                media_id=f"demo-media-{i + 1:04d}",
                media_status=MediaState.READY,
                status=VideoStatus.PUBLISHED,
                preview_seconds=30 if i % 3 else 0,
                required_level=0 if i % 4 == 0 else 1,
                published_at=now - timedelta(hours=i),
            ).save()
        for order, (name, description, level, days, price) in enumerate(PLANS):
            await Plan(
                name=name,
                description=description,
                level=level,
                duration_days=days,
                price_fen=price,
                sort_order=order,
            ).save()
    logger.info("seeded demo data; admin %s", ADMIN_ACCOUNT)
    return True


async def with_services(
    job: Callable[[Services], Awaitable[T]], config: AppConfig | None = None
) -> T:
    """Run ``job(services)`` against the configured database (``config``, default: files
    and environment) outside the web app (CLI commands), then close the pool."""
    import luser_db
    from app.lifespan import init_database
    from app.settings import AppConfig
    from app.vod import VodRegistry
    from luser_config import load_config

    config = config or load_config(schema=AppConfig)
    init_database(config)
    try:
        return await job(Services.build(config, VodRegistry(config.vod)))
    finally:
        await luser_db.close()


async def seed_demo() -> bool:
    """``luser serve`` in development: seed once, with its own short-lived pool."""
    return await with_services(lambda services: seed_demo_data(services.accounts))
