"""Services: the public services perfplat measures, and the registry that holds them. Pure.

A service is what the beacon and the KPI events call ``service``: its ``slug`` (the beacon's
SLUG) is the key. The registry gives it a display ``name``, the department ``group`` it belongs
to, the ``health_check_url`` the availability prober checks every ``probe_interval_s`` (what
Pingdom did for the original platform), the hashed bearer token of its write APIs
(transactions, costs), and its ``alerts`` (rules checked by ``pipeline.alerts``).

The registry lives in one JSON file the operator may edit (``PERFPLAT_SERVICES_FILE``, default
``<data_dir>/services.json``)::

    {"services": [{"slug": "apply-passport", "name": "Apply for a passport", ...}, ...]}

``perfplat services …`` and the admin API (``/_admin/services``) change the same file, with the
same mechanics as the data-set registry (``pipeline.registry_file``); the prober re-reads it
when it changes. A ``bearer_token`` written by hand is hashed on load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from pipeline.alerts import parse_rules
from pipeline.beacon import SLUG
from pipeline.registry_file import JsonRegistryFile, hash_token

GROUP = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
DEFAULT_PROBE_INTERVAL_S = 60
MIN_PROBE_INTERVAL_S = 5
MAX_PROBE_INTERVAL_S = 86_400
DEFAULT_PROBE_TIMEOUT_S = 10
MAX_NAME_CHARS = 200
MAX_URL_CHARS = 2048
PROBE_SCHEMES = ("http", "https")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    slug: str
    name: str
    group: str = ""
    """The department's slug, or empty."""
    health_check_url: str = ""
    """An http(s) URL the prober GETs; empty: the service is not probed."""
    probe_interval_s: int = DEFAULT_PROBE_INTERVAL_S
    probe_timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
    """Longest wait for the whole check (redirects included); shorter than the interval."""
    token_hash: str = ""
    alerts: tuple[dict[str, Any], ...] = ()
    """Alert rules, as plain JSON objects, checked by ``pipeline.alerts.parse_rules``."""

    @property
    def key(self) -> str:
        return self.slug

    @property
    def probed(self) -> bool:
        return self.health_check_url != ""

    def check(self) -> ServiceConfig:
        """Self, or ValueError saying which setting is wrong and what it should be."""
        if type(self.slug) is not str or not SLUG.fullmatch(self.slug):
            raise ValueError(
                "slug must be 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or digit"
            )
        if (
            type(self.name) is not str
            or not self.name.strip()
            or len(self.name) > MAX_NAME_CHARS
            or _CONTROL.search(self.name)
        ):
            raise ValueError(f"name must be a non-empty line of text of up to {MAX_NAME_CHARS} characters")
        if type(self.group) is not str or (self.group and not GROUP.fullmatch(self.group)):
            raise ValueError("group must be a department slug (a-z, 0-9 and -, up to 64 characters) or empty")
        check_health_check_url(self.health_check_url)
        interval = self.probe_interval_s
        if type(interval) is not int or not MIN_PROBE_INTERVAL_S <= interval <= MAX_PROBE_INTERVAL_S:
            raise ValueError(
                f"probe_interval_s must be a whole number of seconds from {MIN_PROBE_INTERVAL_S} "
                f"to {MAX_PROBE_INTERVAL_S}"
            )
        timeout = self.probe_timeout_s
        if type(timeout) not in (int, float) or not math.isfinite(timeout) or timeout <= 0:
            raise ValueError("probe_timeout_s must be a number of seconds greater than 0")
        if timeout >= interval:
            raise ValueError(
                f"probe_timeout_s ({timeout:g} s) must be shorter than probe_interval_s ({interval} s)"
            )
        if type(self.token_hash) is not str:
            raise ValueError("token_hash must be a string")
        if not all(isinstance(rule, dict) for rule in self.alerts):
            raise ValueError("alerts must be a list of JSON objects")
        try:
            orjson.dumps(self.alerts)
        except TypeError:  # orjson.JSONEncodeError
            raise ValueError("alerts must be a list of JSON objects") from None
        parse_rules(self.alerts)  # ValueError names the wrong rule (pipeline.alerts)
        return self

    def as_public(self) -> dict[str, Any]:
        """The configuration as the admin API and the CLI show it (never the token hash)."""
        doc = self.to_doc()
        doc.pop("token_hash")
        return doc

    def to_doc(self) -> dict[str, Any]:
        """The configuration as the registry file stores it (with the token hash)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "group": self.group,
            "health_check_url": self.health_check_url,
            "probe_interval_s": self.probe_interval_s,
            "probe_timeout_s": self.probe_timeout_s,
            "token_hash": self.token_hash,
            "alerts": list(self.alerts),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ServiceConfig:
        """Build and validate a service from a JSON object. Unknown settings, a missing slug or
        name, and wrong values raise ValueError."""
        if not isinstance(doc, dict):
            raise ValueError("a service is a JSON object")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(doc) - allowed - {"bearer_token"}
        if unknown:
            raise ValueError(f"unknown service settings: {', '.join(sorted(map(str, unknown)))}")
        missing = [k for k in ("slug", "name") if k not in doc]
        if missing:
            raise ValueError(f"a service needs {' and '.join(missing)}")
        values = {k: v for k, v in doc.items() if k in allowed}
        if "bearer_token" in doc:  # a plain token written by hand is hashed on load
            values["token_hash"] = hash_token(str(doc["bearer_token"])) if doc["bearer_token"] else ""
        alerts = values.get("alerts", ())
        if not isinstance(alerts, list | tuple):
            raise ValueError("alerts must be a list of JSON objects")
        values["alerts"] = tuple(alerts)
        return cls(**values).check()


def check_health_check_url(url: object) -> None:
    """ValueError unless ``url`` is empty or an absolute http(s) URL with a host, no
    credentials, no spaces or control characters."""
    if type(url) is not str:
        raise ValueError("health_check_url must be a string")
    if url == "":
        return
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"health_check_url must be at most {MAX_URL_CHARS} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise ValueError("health_check_url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("health_check_url is not a valid URL (check its host and port)") from None
    if not parts.scheme:
        raise ValueError("health_check_url must be an absolute http:// or https:// URL")
    if parts.scheme not in PROBE_SCHEMES:
        raise ValueError(f"health_check_url must be an http:// or https:// URL, not {parts.scheme[:20]}:")
    if not parts.hostname:
        raise ValueError("health_check_url has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("health_check_url must not carry credentials (user:password@)")
    if port == 0:
        raise ValueError("health_check_url has an invalid port")


@dataclass
class ServiceRegistry:
    """Every service, by slug. Pure container; ``ServiceRegistryFile`` persists it."""

    services: dict[str, ServiceConfig] = field(default_factory=dict)

    @property
    def entries(self) -> dict[str, ServiceConfig]:
        return self.services

    def get(self, slug: str) -> ServiceConfig | None:
        return self.services.get(slug)

    def probed(self) -> list[ServiceConfig]:
        """The services with a health-check URL, by slug."""
        return [s for _, s in sorted(self.services.items()) if s.probed]

    @classmethod
    def from_bytes(cls, raw: bytes) -> ServiceRegistry:
        """The registry from the file's bytes (empty: no services). ValueError names the first
        service that is wrong, by position."""
        try:
            doc = orjson.loads(raw) if raw.strip() else {"services": []}
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the services file is not JSON: {exc}") from None
        items = doc.get("services", []) if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ValueError('the services file must hold {"services": [...]}')
        services: dict[str, ServiceConfig] = {}
        for i, item in enumerate(items):
            try:
                config = ServiceConfig.from_doc(item)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"service #{i + 1} in the services file: {exc}") from None
            if config.slug in services:
                raise ValueError(f"service {config.slug} appears twice in the services file")
            services[config.slug] = config
        return cls(services)

    def to_bytes(self) -> bytes:
        items = [config.to_doc() for _, config in sorted(self.services.items())]
        return orjson.dumps({"services": items}, option=orjson.OPT_INDENT_2) + b"\n"


class ServiceRegistryFile(JsonRegistryFile[ServiceRegistry, ServiceConfig]):
    """The services registry on disk: ``current()``, ``reload()``, ``create()``,
    ``rotate_token(slug)``, ``configure(slug, **settings)`` (see ``JsonRegistryFile``)."""

    def __init__(self, path: Path, check_interval_s: float = 1.0) -> None:
        super().__init__(path, ServiceRegistry.from_bytes, "service", check_interval_s)
