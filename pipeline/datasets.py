"""Data sets: their configuration (the original Stagecraft fields) and the registry that holds it.

A data set is ``{data_group}/{data_type}``; its name is ``{group}_{type}`` with ``-`` → ``_``.
The registry lives in one JSON file the operator may edit (``PERFPLAT_DATASETS_FILE``, default
``<data_dir>/datasets.json``); ``perfplat datasets …`` and the admin API change the same file
(atomic rename under a lock), and every process re-reads it when it changes. Bearer tokens are
kept only as salted SHA-256 hashes: they are random 32-byte secrets, so a slow password hash
would add nothing but latency; they are compared in constant time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson

SLUG = re.compile(r"[a-z0-9-]+")
NAME = re.compile(r"[a-z0-9_]+")
DEFAULT_MAX_AGE_S = 86_400
UploadFormat = Literal["", "csv", "excel"]


def data_set_name(group: str, data_type: str) -> str:
    return f"{group}_{data_type}".replace("-", "_")


def hash_token(token: str, salt: str | None = None) -> str:
    salt = salt if salt is not None else secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256((salt + token).encode()).hexdigest()}"


def token_matches(token: str, stored: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash. An empty token or an
    empty stored hash never matches (as in the original)."""
    if not token or not stored or stored.count("$") != 2:
        return False
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(hash_token(token, salt).encode(), stored.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class DataSetConfig:
    data_group: str
    data_type: str
    token_hash: str = ""
    raw_queries_allowed: bool = True
    queryable: bool = True
    realtime: bool = False
    published: bool = True
    max_age_expected: int | None = DEFAULT_MAX_AGE_S
    auto_ids: tuple[str, ...] = ()
    upload_format: UploadFormat = ""
    upload_filters: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    """Optional JSON schema (draft 4) every record must satisfy."""

    @property
    def name(self) -> str:
        return data_set_name(self.data_group, self.data_type)

    def check(self) -> DataSetConfig:
        if not SLUG.fullmatch(self.data_group) or not SLUG.fullmatch(self.data_type):
            raise ValueError("data_group and data_type must match ^[a-z0-9-]+$")
        if self.max_age_expected is not None and self.max_age_expected < 0:
            raise ValueError("max_age_expected must be a number of seconds, or null")
        if self.upload_format not in ("", "csv", "excel"):
            raise ValueError("upload_format must be csv or excel")
        return self

    def as_public(self) -> dict[str, Any]:
        """The configuration as the admin API and the CLI show it (never the token hash)."""
        doc = asdict(self)
        doc.pop("token_hash")
        doc["name"] = self.name
        doc["auto_ids"] = list(self.auto_ids)
        doc["upload_filters"] = list(self.upload_filters)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> DataSetConfig:
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = set(doc) - allowed - {"name", "bearer_token"}
        if unknown:
            raise ValueError(f"unknown data-set settings: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in doc.items() if k in allowed}
        if "bearer_token" in doc:  # a plain token written by hand is hashed on load
            values["token_hash"] = hash_token(str(doc["bearer_token"])) if doc["bearer_token"] else ""
        for key in ("auto_ids", "upload_filters"):
            raw = values.get(key, ())
            if isinstance(raw, str):
                raw = [p.strip() for p in raw.split(",") if p.strip()]
            values[key] = tuple(raw)
        return cls(**values).check()


@dataclass
class Registry:
    """Every data set, by name. Pure container; ``RegistryFile`` persists it."""

    sets: dict[str, DataSetConfig] = field(default_factory=dict)

    def by_name(self, name: str) -> DataSetConfig | None:
        return self.sets.get(name)

    def get(self, group: str, data_type: str) -> DataSetConfig | None:
        config = self.sets.get(data_set_name(group, data_type))
        if config is None or (config.data_group, config.data_type) != (group, data_type):
            return None
        return config

    @classmethod
    def from_bytes(cls, raw: bytes) -> Registry:
        doc = orjson.loads(raw) if raw.strip() else {"data_sets": []}
        items = doc.get("data_sets", []) if isinstance(doc, dict) else doc
        sets = {}
        for item in items:
            config = DataSetConfig.from_doc(item)
            sets[config.name] = config
        return cls(sets)

    def to_bytes(self) -> bytes:
        items = []
        for config in sorted(self.sets.values(), key=lambda c: c.name):
            doc = asdict(config)
            doc["auto_ids"] = list(config.auto_ids)
            doc["upload_filters"] = list(config.upload_filters)
            items.append(doc)
        return orjson.dumps({"data_sets": items}, option=orjson.OPT_INDENT_2) + b"\n"


class RegistryFile:
    """The registry on disk. ``current()`` re-reads the file at most every ``check_interval_s``
    when its modification time or size changed; ``update()`` is read-modify-write under an
    exclusive lock with an atomic rename, so concurrent CLI and API changes do not lose each other."""

    def __init__(self, path: Path, check_interval_s: float = 1.0) -> None:
        self.path = path
        self._check_interval_s = check_interval_s
        self._registry = Registry()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Registry:
        now = time.monotonic()
        if now - self._checked >= self._check_interval_s:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._registry = Registry.from_bytes(self.path.read_bytes()) if stamp else Registry()
                self._stamp = stamp
        return self._registry

    def reload(self) -> Registry:
        self._checked = 0.0
        self._stamp = None
        return self.current()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, change: Any) -> Any:
        """Apply ``change(registry) -> result`` to the file's current content and save it."""
        with self._locked():
            raw = self.path.read_bytes() if self.path.exists() else b""
            registry = Registry.from_bytes(raw)
            result = change(registry)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".datasets-")
            with os.fdopen(fd, "wb") as out:
                out.write(registry.to_bytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        self.reload()
        return result

    def create(self, config: DataSetConfig, token: str | None = None) -> str:
        """Add a data set; returns its bearer token (generated unless given). Existing → ValueError."""
        token = token or new_token()
        config = replace(config.check(), token_hash=hash_token(token))

        def change(registry: Registry) -> None:
            if config.name in registry.sets:
                raise ValueError(f"data set {config.name} already exists")
            registry.sets[config.name] = config

        self.update(change)
        return token

    def rotate_token(self, name: str, token: str | None = None) -> str:
        token = token or new_token()

        def change(registry: Registry) -> None:
            config = registry.sets.get(name)
            if config is None:
                raise KeyError(name)
            registry.sets[name] = replace(config, token_hash=hash_token(token))

        self.update(change)
        return token

    def configure(self, name: str, **settings: Any) -> DataSetConfig:
        def change(registry: Registry) -> DataSetConfig:
            config = registry.sets.get(name)
            if config is None:
                raise KeyError(name)
            doc = asdict(config) | settings
            registry.sets[name] = DataSetConfig.from_doc(doc)
            return registry.sets[name]

        result: DataSetConfig = self.update(change)
        return result
