"""Data sets: their configuration (the original Stagecraft fields) and the registry that holds it.

A data set is ``{data_group}/{data_type}``; its name is ``{group}_{type}`` with ``-`` → ``_``.
The registry lives in one JSON file the operator may edit (``PERFPLAT_DATASETS_FILE``, default
``<data_dir>/datasets.json``); ``perfplat datasets …`` and the admin API change the same file,
and every process re-reads it when it changes. The file mechanics and the hashed bearer tokens
are shared with the services registry (``pipeline.registry_file``); their names stay importable
from here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from pipeline.registry_file import JsonRegistryFile, hash_token, new_token, token_matches

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "NAME",
    "SLUG",
    "DataSetConfig",
    "Registry",
    "RegistryFile",
    "UploadFormat",
    "data_set_name",
    "hash_token",
    "new_token",
    "token_matches",
]

SLUG = re.compile(r"[a-z0-9-]+")
NAME = re.compile(r"[a-z0-9_]+")
DEFAULT_MAX_AGE_S = 86_400
UploadFormat = Literal["", "csv", "excel"]


def data_set_name(group: str, data_type: str) -> str:
    return f"{group}_{data_type}".replace("-", "_")


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

    @property
    def key(self) -> str:
        """Its name: the registry's key."""
        return self.name

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

    def to_doc(self) -> dict[str, Any]:
        """The configuration as the registry file stores it (with the token hash)."""
        doc = asdict(self)
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

    @property
    def entries(self) -> dict[str, DataSetConfig]:
        return self.sets

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
        items = [config.to_doc() for config in sorted(self.sets.values(), key=lambda c: c.name)]
        return orjson.dumps({"data_sets": items}, option=orjson.OPT_INDENT_2) + b"\n"


class RegistryFile(JsonRegistryFile[Registry, DataSetConfig]):
    """The data-set registry on disk: ``current()``, ``reload()``, ``update()``, ``create()``,
    ``rotate_token(name)``, ``configure(name, **settings)`` (see ``JsonRegistryFile``)."""

    def __init__(self, path: Path, check_interval_s: float = 1.0) -> None:
        super().__init__(path, Registry.from_bytes, "data set", check_interval_s)
