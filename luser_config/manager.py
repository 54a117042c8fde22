"""ConfigManager (the live config: snapshot, get/set, reload, subscribers) and its builder."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, overload

from pydantic import BaseModel, SecretStr

from luser_common import AppError, ConfigError

from ._crypto import KeyRing, is_encrypted
from ._loader import Loader, PathLike
from ._paths import flatten, get_path, is_sensitive, set_path, split
from ._registry import SettingsT
from ._reload import DbPoller, FileWatcher
from ._rotate import RotationReport, rotate_key
from ._snapshot import Snapshot
from .schema import Settings
from .sources.base import Layer, Source, merge_layers
from .sources.database import DatabaseSource

__all__ = ["ConfigBuilder", "ConfigManager", "Subscriber"]

log = logging.getLogger("luser_config")

Subscriber = Callable[[Settings, Settings], Awaitable[None] | None]
_MISSING: Any = object()


def lookup(config: Settings, key: str) -> Any:
    """``lookup(cfg, "database.url")``: attributes of models, items of dicts."""
    node: Any = config
    for seg in split(key):
        if isinstance(node, BaseModel):
            extra = node.__pydantic_extra__ or {}
            if seg in type(node).model_fields:
                node = getattr(node, seg)
            elif seg in extra:
                node = extra[seg]
            else:
                return _MISSING
        elif isinstance(node, dict) and seg in node:
            node = node[seg]
        else:
            return _MISSING
    return node


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


class ConfigManager:
    """Holds the current immutable Snapshot; reloads build a new one and swap it."""

    def __init__(
        self,
        loader: Loader,
        snapshot: Snapshot,
        *,
        db: DatabaseSource | None = None,
        db_layer: Layer | None = None,
        updated_by: str = "luser_config",
    ) -> None:
        self._loader = loader
        self._snapshot = snapshot
        self._db = db
        self._db_layer = db_layer
        self._overrides = Layer("set")
        self._subscribers: list[Subscriber] = []
        self._lock = asyncio.Lock()
        self._watchers: list[FileWatcher | DbPoller] = []
        self._updated_by = updated_by
        self.last_error: AppError | None = None

    def __repr__(self) -> str:
        return (
            f"ConfigManager(env={self._loader.env!r}, dir={str(self._loader.config_dir)!r}, "
            f"db={self._db is not None}, generation={self._snapshot.generation})"
        )

    # -- reading -------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def env(self) -> str:
        return self._loader.env

    @property
    def schema(self) -> type[Settings]:
        """The schema every load and reload of this manager validates against."""
        return self._loader.schema

    @overload
    def get_config(self) -> Settings: ...

    @overload
    def get_config(self, schema: type[SettingsT]) -> SettingsT: ...

    def get_config(self, schema: type[Settings] | None = None) -> Settings:
        """The current config. Hold on to it for one unit of work; it never changes.

        ``get_config(MySettings)`` returns it typed as the application's schema and raises
        ConfigError when it was loaded with another one (``use_schema`` came too late)."""
        config = self._snapshot.config
        if schema is not None and not isinstance(config, schema):
            raise ConfigError(
                f"配置是按 {type(config).__name__} 加载的, 不是 {schema.__name__}: "
                f"请在加载前调用 luser_config.use_schema({schema.__name__})",
                field="schema",
            )
        return config

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The value at dotted ``key`` (secrets stay SecretStr); ConfigError if absent."""
        value = lookup(self._snapshot.config, key)
        if value is _MISSING:
            if default is not _MISSING:
                return default
            raise ConfigError(f"配置项不存在: {key}", field=key)
        return value

    def source_of(self, key: str) -> Source:
        return self._snapshot.source_of(key)

    # -- subscribers ---------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` (sync or async) after each change; returns unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def _notify(self, old: Settings, new: Settings) -> None:
        for callback in list(self._subscribers):
            try:
                result = callback(old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one bad subscriber must not starve the others
                log.exception("配置变更订阅者执行失败: %r", callback)

    # -- reloading -----------------------------------------------------------------

    async def _build(self, db_layer: Layer | None = None) -> Snapshot:
        files = self._loader.file_layers()
        middle = [db_layer] if db_layer is not None else []
        return self._loader.assemble(files, *middle, top=self._overrides)

    def _swap(self, new: Snapshot) -> tuple[Settings, Settings] | None:
        """Install ``new``; the (old, new) pair to notify when the config changed."""
        old = self._snapshot
        self._snapshot = new
        self.last_error = None
        return None if old.config == new.config else (old.config, new.config)

    async def reload(self) -> bool:
        """Re-read every source; on any problem raise and keep the current config.
        Returns whether the config changed (subscribers are notified when it did)."""
        async with self._lock:
            db_layer = await self._db.read() if self._db is not None else None
            new = await self._build(db_layer)
            self._db_layer = db_layer
            change = self._swap(new)
        # Outside the lock, so a subscriber may itself call set() or reload().
        if change is not None:
            await self._notify(*change)
        return change is not None

    async def _reload_logged(self, reason: str) -> None:
        try:
            changed = await self.reload()
        except AppError as exc:
            self.last_error = exc
            log.error("配置热加载失败 (%s), 继续使用上一版配置: %s", reason, exc.message)
            return
        if changed:
            log.info("配置已热加载 (%s), generation=%d", reason, self._snapshot.generation)

    # -- writing -------------------------------------------------------------------

    async def set(self, key: str, value: Any, *, persist: bool = True) -> None:
        """Change one key. With the database source and ``persist`` the value is written to
        the table (encrypted when the key is sensitive and a key is configured); otherwise
        it is an in-memory override above every source. Invalid values raise, nothing changes."""
        path = split(key)
        if not path:
            raise ConfigError("配置项名称不能为空")
        value = _plain(value)
        async with self._lock:
            if self._db is not None and persist:
                stored = self._maybe_encrypt(key, value)
                layer = copy.deepcopy(self._db_layer) if self._db_layer else Layer("db")
                set_path(layer.data, path, stored)
                layer.provenance[key] = Source("db", f"{self._db.table}[env={self.env}]")
                new = await self._build(layer)
                await self._db.put(key, stored, self._updated_by)
                self._db_layer = layer
            else:
                previous = copy.deepcopy(self._overrides)
                set_path(self._overrides.data, path, value)
                self._overrides.provenance[key] = Source("set", key)
                try:
                    new = await self._build(self._db_layer)
                except AppError:
                    self._overrides = previous
                    raise
            change = self._swap(new)
        if change is not None:
            await self._notify(*change)
        if new.source_of(key).kind == "env":
            log.warning("配置项 %s 已写入, 但被环境变量 %s 覆盖", key, new.source_of(key).name)

    def _maybe_encrypt(self, key: str, value: Any) -> Any:
        if not isinstance(value, str) or is_encrypted(value):
            return value
        if not self._snapshot.is_sensitive(key):
            return value
        ring = self._loader.keyring(merge_layers(self._loader.file_layers()))
        return ring.encrypt(value, key) if ring is not None else value

    # -- keys ----------------------------------------------------------------------

    async def rotate_key(self, new_key: KeyRing | str, *, dry_run: bool = False) -> RotationReport:
        """Re-encrypt every ENC value in the config folder and the table under ``new_key``,
        then keep using old + new keys. Put the reported ring into LUSER_ENCRYPTION_KEY."""
        new = KeyRing.parse(new_key, "new_key") if isinstance(new_key, str) else new_key
        old = self._loader.keyring(merge_layers(self._loader.file_layers()))
        if old is None:
            raise ConfigError("没有当前密钥, 无法轮换 (设置 LUSER_ENCRYPTION_KEY)")
        async with self._lock:
            report = await rotate_key(
                self._loader.config_dir,
                old,
                new,
                files=self._loader.extra_files,
                db=self._db,
                dry_run=dry_run,
            )
        if not dry_run:
            self._loader.key_override = old.with_primary(new)
            await self.reload()
        return report

    # -- lifecycle -----------------------------------------------------------------

    async def start_hot_reload(self) -> None:
        """Watch the files (and poll the table) until ``close()``."""
        if self._watchers:
            return
        settings = self._snapshot.config.hot_reload
        files = [p for p in self._loader.file_paths() if p.parent.is_dir()]
        # {env}.toml may appear later; watch for it too.
        files.append(self._loader.config_dir / f"{self.env}.toml")
        watcher = FileWatcher(files, self._reload_logged, settings.debounce_ms)
        watcher.start()
        self._watchers.append(watcher)
        if self._db is not None:
            poller = DbPoller(self._db, self._reload_logged, settings.db_poll_seconds)
            await poller.start()
            self._watchers.append(poller)

    async def close(self) -> None:
        """Stop watchers and pollers. The last snapshot stays readable."""
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            await watcher.stop()

    def _stop_nowait(self) -> None:
        for watcher in self._watchers:
            watcher._stop.set()
        self._watchers = []


class ConfigBuilder:
    """``await ConfigBuilder().env("production").with_db(True).with_hot_reload(True).build()``"""

    def __init__(self) -> None:
        self._env: str | None = None
        self._dir: PathLike | None = None
        self._files: list[PathLike] = []
        self._db = False
        self._dsn: str | None = None
        self._table = "app_config"
        self._hot = False
        self._force = False
        self._key: KeyRing | str | None = None
        self._install = True
        self._schema: type[Settings] | None = None

    def env(self, name: str) -> Self:
        self._env = name
        return self

    def config_dir(self, path: PathLike) -> Self:
        self._dir = path
        return self

    def file(self, path: PathLike) -> Self:
        """An extra TOML file above {env}.toml; it must exist."""
        self._files.append(path)
        return self

    def with_db(
        self, enabled: bool = True, *, dsn: str | None = None, table: str = "app_config"
    ) -> Self:
        """Read the config table after the files. The DSN defaults to ``database.url``."""
        self._db, self._dsn, self._table = enabled, dsn or self._dsn, table
        return self

    def dsn(self, url: str) -> Self:
        self._dsn = url
        return self

    def with_hot_reload(self, enabled: bool = True) -> Self:
        self._hot = enabled
        return self

    def force_init(self, enabled: bool = True) -> Self:
        """Overwrite the table's rows with the local files' values on build."""
        self._force = enabled
        return self

    def encryption_key(self, key: KeyRing | str) -> Self:
        """A key ring (``kid:b64,...``) used instead of LUSER_ENCRYPTION_KEY."""
        self._key = key
        return self

    def with_key_mgmt(self, source: KeyRing | str | Path) -> Self:
        """Where keys come from: a KeyRing, the path of a key ring file, or ring text."""
        if isinstance(source, KeyRing):
            self._key = source
        elif isinstance(source, Path) or Path(source).is_file():
            self._key = KeyRing.from_file(source)
        else:
            try:
                self._key = KeyRing.parse(source, "with_key_mgmt")
            except AppError as exc:
                raise ConfigError(
                    f"with_key_mgmt: 既不是密钥文件也不是合法的密钥: {exc.message}"
                ) from exc
        return self

    def schema(self, schema: type[Settings]) -> Self:
        """Validate against ``schema`` (a ``Settings`` subclass) instead of the registered one."""
        self._schema = schema
        return self

    def install(self, enabled: bool = True) -> Self:
        """Whether build() makes this manager the module-level config (default yes)."""
        self._install = enabled
        return self

    async def build(self) -> ConfigManager:
        loader = Loader.create(self._env, self._dir, self._files, self._key, self._schema)
        files = loader.file_layers()
        db = db_layer = None
        if self._db:
            db = DatabaseSource(self._dsn or _database_url(loader, files), loader.env, self._table)
            if self._force:
                await db.sync_from(_sealed_files(loader, files), overwrite=True)
            db_layer = await db.read()
        snapshot = loader.assemble(files, *([db_layer] if db_layer else []))
        manager = ConfigManager(loader, snapshot, db=db, db_layer=db_layer)
        if self._hot:
            await manager.start_hot_reload()
        if self._install:
            from ._global import install

            install(manager)
        return manager


def _sealed_files(loader: Loader, files: list[Layer]) -> dict[str, Any]:
    """The merged files with plaintext secrets encrypted (when a key is configured), so
    force_init never copies a plaintext secret into the table."""
    merged = merge_layers(files)
    ring = loader.keyring(merged)
    patterns = get_path(merged.data, ["encryption", "sensitive_keys"])
    patterns = patterns if isinstance(patterns, list) else []
    data = copy.deepcopy(merged.data)
    if ring is None:
        return data
    for key, value in flatten(data).items():
        if (
            isinstance(value, str)
            and value
            and not is_encrypted(value)
            and is_sensitive(key, patterns, loader.schema)
        ):
            set_path(data, split(key), ring.encrypt(value, key))
    return data


def _database_url(loader: Loader, files: list[Layer]) -> str:
    """``database.url`` from the files + environment (decrypted): the table's home."""
    merged = merge_layers([*files, loader.env_layer()])
    url = get_path(merged.data, ["database", "url"])
    if not isinstance(url, str) or not url:
        raise ConfigError(
            "使用数据库配置源需要 database.url (配置文件或 LUSER__DATABASE__URL), "
            "或在 ConfigBuilder.with_db(dsn=...) 中指定",
            field="database.url",
        )
    if is_encrypted(url):
        ring = loader.keyring(merged)
        if ring is None:
            raise ConfigError("database.url 是加密值, 但没有配置密钥", field="database.url")
        url = ring.decrypt(url, "database.url")
    return url
