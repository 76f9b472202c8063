"""The services registry (``pipeline.services``) and its two front doors, ``perfplat services``
and ``/_admin/services``: what a service is, what is refused and how clearly, hashed tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from api.app import ingest_app
from pipeline import cli
from pipeline.registry_file import token_matches
from pipeline.services import ServiceConfig, ServiceRegistry, ServiceRegistryFile
from pipeline.settings import Settings

# --- what a service is ----------------------------------------------------------------------


def test_a_service_with_defaults() -> None:
    service = ServiceConfig.from_doc({"slug": "apply-passport", "name": "Apply for a passport"})
    assert service == ServiceConfig("apply-passport", "Apply for a passport")
    assert (service.group, service.health_check_url, service.alerts) == ("", "", ())
    assert (service.probe_interval_s, service.probe_timeout_s) == (60, 10)
    assert not service.probed


def test_a_service_in_full_round_trips_through_its_document() -> None:
    doc = {
        "slug": "vehicle_tax",
        "name": "Vehicle tax — renew",
        "group": "dvla",
        "health_check_url": "https://www.example.gov.uk/healthcheck?deep=1",
        "probe_interval_s": 30,
        "probe_timeout_s": 2.5,
        "token_hash": "",
        "alerts": [
            {"id": "late", "data_set": "a/b", "webhook": "https://h.example/"},
            {
                "id": "slow",
                "kpi": "completion_rate",
                "op": "below",
                "threshold": 0.8,
                "period": "hour",
                "webhook": "https://h.example/",
            },
        ],
    }
    service = ServiceConfig.from_doc(doc)
    assert service.probed and service.key == "vehicle_tax"
    assert service.to_doc() == doc
    assert ServiceConfig.from_doc(service.to_doc()) == service


def test_the_public_view_never_shows_the_token_hash() -> None:
    service = ServiceConfig.from_doc({"slug": "s", "name": "S", "bearer_token": "plain"})
    assert token_matches("plain", service.token_hash)
    assert "token_hash" not in service.as_public()
    assert b"plain" not in orjson.dumps(service.to_doc())


BAD_SERVICES: list[tuple[dict[str, Any], str]] = [
    ({"name": "No slug"}, "a service needs slug"),
    ({"slug": "s"}, "a service needs name"),
    ({"slug": "Bad Slug", "name": "N"}, "slug must be 1 to 64 characters"),
    ({"slug": "-lead", "name": "N"}, "slug must be"),
    ({"slug": "s" * 65, "name": "N"}, "slug must be"),
    ({"slug": 7, "name": "N"}, "slug must be"),
    ({"slug": "s", "name": ""}, "name must be a non-empty line of text"),
    ({"slug": "s", "name": "   "}, "name must be"),
    ({"slug": "s", "name": "two\nlines"}, "name must be"),
    ({"slug": "s", "name": "n" * 201}, "up to 200 characters"),
    ({"slug": "s", "name": ["N"]}, "name must be"),
    ({"slug": "s", "name": "N", "group": "Home Office"}, "group must be a department slug"),
    ({"slug": "s", "name": "N", "group": 3}, "group must be"),
    ({"slug": "s", "name": "N", "colour": "red"}, "unknown service settings: colour"),
    ({"slug": "s", "name": "N", "alerts": {"kind": "x"}}, "alerts must be a list of JSON objects"),
    ({"slug": "s", "name": "N", "alerts": "down"}, "alerts must be a list"),
    ({"slug": "s", "name": "N", "alerts": [1, 2]}, "alerts must be a list of JSON objects"),
    ({"slug": "s", "name": "N", "alerts": [{"k": {1, 2}}]}, "alerts must be a list of JSON objects"),
]


BAD_URLS: list[tuple[object, str]] = [
    ("file:///etc/passwd", "must be an http:// or https:// URL, not file:"),
    ("javascript:alert(1)", "must be an http:// or https:// URL, not javascript:"),
    ("JavaScript:alert(1)", "not javascript:"),
    ("ftp://example.com/", "not ftp:"),
    ("data:text/html,<b>hi</b>", "not data:"),
    ("gopher://example.com/", "not gopher:"),
    ("//example.com/health", "must be an absolute http:// or https:// URL"),
    ("/health", "must be an absolute"),
    ("example.com/health", "must be an absolute"),
    ("http:///health", "has no host"),
    ("https://user:secret@example.com/", "must not carry credentials"),
    ("https://token@example.com/", "must not carry credentials"),
    ("http://example.com/a b", "must not contain spaces or control characters"),
    (" http://example.com/", "must not contain spaces"),
    ("http://example.com/\r\nX-Injected: 1", "control characters"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://example.com:0/", "invalid port"),
    ("http://[::1/", "not a valid URL"),
    ("https://example.com/" + "a" * 2048, "at most 2048 characters"),
    (42, "health_check_url must be a string"),
    (None, "health_check_url must be a string"),
]


BAD_PROBING: list[tuple[dict[str, Any], str]] = [
    ({"probe_interval_s": 4}, "probe_interval_s must be a whole number of seconds from 5 to 86400"),
    ({"probe_interval_s": 0}, "from 5 to 86400"),
    ({"probe_interval_s": -60}, "from 5 to 86400"),
    ({"probe_interval_s": 86_401}, "from 5 to 86400"),
    ({"probe_interval_s": 30.5}, "whole number of seconds"),
    ({"probe_interval_s": "60"}, "whole number of seconds"),
    ({"probe_interval_s": True}, "whole number of seconds"),
    ({"probe_interval_s": None}, "whole number of seconds"),
    ({"probe_timeout_s": 0}, "probe_timeout_s must be a number of seconds greater than 0"),
    ({"probe_timeout_s": -1}, "greater than 0"),
    ({"probe_timeout_s": "10"}, "greater than 0"),
    ({"probe_timeout_s": False}, "greater than 0"),
    ({"probe_timeout_s": float("nan")}, "greater than 0"),
    ({"probe_timeout_s": float("inf")}, "greater than 0"),
    ({"probe_interval_s": 5}, "probe_timeout_s (10 s) must be shorter than probe_interval_s (5 s)"),
    ({"probe_interval_s": 30, "probe_timeout_s": 30}, "(30 s) must be shorter than probe_interval_s (30 s)"),
]


@pytest.mark.parametrize(("doc", "message"), BAD_SERVICES)
def test_a_bad_service_is_refused_with_a_clear_reason(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=_literal(message)):
        ServiceConfig.from_doc(doc)


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_only_plain_http_and_https_urls_are_probed(url: object, message: str) -> None:
    with pytest.raises(ValueError, match=_literal(message)):
        ServiceConfig.from_doc({"slug": "s", "name": "N", "health_check_url": url})


@pytest.mark.parametrize(("settings", "message"), BAD_PROBING)
def test_probe_intervals_and_timeouts_are_bounded(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=_literal(message)):
        ServiceConfig.from_doc({"slug": "s", "name": "N", **settings})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/healthz",
        "HTTPS://Example.COM/health",
        "https://[::1]:8443/",
        "https://www.example.gov.uk/health?check=deep#fragment",
        "http://localhost/",
    ],
)
def test_good_health_check_urls(url: str) -> None:
    assert ServiceConfig.from_doc({"slug": "s", "name": "N", "health_check_url": url}).probed


def test_the_smallest_interval_and_a_timeout_just_under_it() -> None:
    doc = {"slug": "s", "name": "N", "probe_interval_s": 5, "probe_timeout_s": 4.9}
    service = ServiceConfig.from_doc(doc)
    assert (service.probe_interval_s, service.probe_timeout_s) == (5, 4.9)


def _literal(text: str) -> str:
    import re

    return re.escape(text)


# --- the registry ---------------------------------------------------------------------------


def test_the_registry_file_format() -> None:
    raw = b"""{"services": [
        {"slug": "b", "name": "B", "health_check_url": "http://b.example/"},
        {"slug": "a", "name": "A"}
    ]}"""
    registry = ServiceRegistry.from_bytes(raw)
    assert [s.slug for s in registry.probed()] == ["b"]
    assert registry.get("a") == ServiceConfig("a", "A")
    assert registry.get("c") is None
    written = orjson.loads(registry.to_bytes())
    assert [s["slug"] for s in written["services"]] == ["a", "b"]  # sorted by slug
    assert ServiceRegistry.from_bytes(registry.to_bytes()) == registry
    assert ServiceRegistry.from_bytes(b"") == ServiceRegistry.from_bytes(b"  \n") == ServiceRegistry()
    assert ServiceRegistry.from_bytes(b'[{"slug": "a", "name": "A"}]').get("a") is not None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "the services file is not JSON"),
        (b'{"services": {"slug": "a"}}', 'must hold {"services": [...]}'),
        (b'{"services": [{"slug": "a", "name": "A"}, {"slug": "a", "name": "B"}]}', "a appears twice"),
        (
            b'{"services": [{"slug": "a", "name": "A"}, {"slug": "b", "name": "B", "probe_interval_s": 1}]}',
            "service #2 in the services file: probe_interval_s",
        ),
        (b'{"services": ["a"]}', "service #1 in the services file: a service is a JSON object"),
    ],
)
def test_a_broken_registry_file_says_where(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=_literal(message)):
        ServiceRegistry.from_bytes(raw)


def test_create_rotate_configure(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    a, b = ServiceRegistryFile(path), ServiceRegistryFile(path, check_interval_s=0)
    token = a.create(ServiceConfig("s", "S"))
    service = b.current().get("s")
    assert service is not None and token_matches(token, service.token_hash)
    new = b.rotate_token("s")
    stored = a.reload().services["s"].token_hash
    assert token_matches(new, stored) and not token_matches(token, stored)
    assert a.create(ServiceConfig("t", "T"), token="given") == "given"
    changed = a.configure(
        "s",
        health_check_url="https://s.example/health",
        alerts=[{"id": "late", "data_set": "a/b", "webhook": "https://h.example/"}],
    )
    assert changed.health_check_url == "https://s.example/health" and changed.alerts == (
        {"id": "late", "data_set": "a/b", "webhook": "https://h.example/"},
    )
    assert token_matches(new, changed.token_hash)  # configuring keeps the token
    with pytest.raises(KeyError):
        a.configure("nope", name="N")
    with pytest.raises(KeyError):
        a.rotate_token("nope")


# --- perfplat services ----------------------------------------------------------------------


@pytest.fixture
def services_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "services.json"
    monkeypatch.setenv("PERFPLAT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PERFPLAT_SERVICES_FILE", str(path))
    return path


def test_the_command_adds_lists_configures_and_rotates(
    services_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "services",
            "add",
            "apply-passport",
            "--name",
            "Apply for a passport",
            "--group",
            "hmpo",
            "--health-check-url",
            "https://passport.example/health",
            "--set",
            "probe_interval_s=30",
            "--set",
            'alerts=[{"id": "late", "data_set": "a/b", "webhook": "https://h.example/"}]',
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("added apply-passport; bearer token (shown once): ")
    token = out.rsplit(" ", 1)[1].strip()
    stored = ServiceRegistryFile(services_file).current().services["apply-passport"]
    assert token_matches(token, stored.token_hash)
    assert (stored.group, stored.probe_interval_s, stored.alerts) == (
        "hmpo",
        30,
        ({"id": "late", "data_set": "a/b", "webhook": "https://h.example/"},),
    )

    assert cli.main(["services", "add", "b", "--name", "B", "--token", "mine"]) == 0
    assert capsys.readouterr().out == "added b; bearer token (shown once): mine\n"

    assert cli.main(["services", "list"]) == 0
    listed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["slug"] for s in listed] == ["apply-passport", "b"]
    assert all("token_hash" not in s for s in listed) and token not in str(listed)

    assert cli.main(["services", "configure", "b", "--set", "name=Bee", "--set", "probe_timeout_s=3"]) == 0
    assert orjson.loads(capsys.readouterr().out)["name"] == "Bee"

    assert cli.main(["services", "rotate-token", "b"]) == 0
    new = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
    stored = ServiceRegistryFile(services_file).current().services["b"]
    assert token_matches(new, stored.token_hash) and not token_matches("mine", stored.token_hash)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "s", "--name", "S", "--health-check-url", "file:///etc/passwd"], "not file:"),
        (["add", "s", "--name", "S", "--health-check-url", "javascript:alert(1)"], "not javascript:"),
        (["add", "s", "--name", "S", "--set", "probe_interval_s=1"], "from 5 to 86400"),
        (["add", "s", "--name", "S", "--set", "probe_interval_s=4"], "from 5 to 86400"),
        (["add", "s", "--name", "S", "--set", "probe_interval_s=5"], "must be shorter than"),
        (["add", "S S", "--name", "S"], "slug must be"),
        (["add", "s", "--name", "S", "--set", "alerts=3"], "alerts must be a list"),
        (["add", "s", "--name", "S", "--set", "colour=red"], "unknown service settings: colour"),
        (["add", "s", "--name", "S", "--set", "token_hash=x"], "give a token with --token"),
        (["add", "s", "--name", "S", "--set", "probe_interval_s"], "--set takes KEY=VALUE"),
        (["configure", "taken", "--set", "health_check_url=ftp://x/"], "not ftp:"),
        (["configure", "taken", "--set", "probe_interval_s=2"], "from 5 to 86400"),
        (["configure", "taken", "--set", "slug=other"], "cannot be changed here"),
        (["configure", "nope", "--set", "name=N"], "no service named nope"),
        (["rotate-token", "nope"], "no service named nope"),
        (["add", "taken", "--name", "Again"], "service taken already exists"),
    ],
)
def test_the_command_refuses_bad_input_clearly_and_changes_nothing(
    services_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["services", "add", "taken", "--name", "Taken", "--token", "t"]) == 0
    before = services_file.read_bytes()
    capsys.readouterr()
    assert cli.main(["services", *argv]) == 1
    out, err = capsys.readouterr()
    assert message in err and out == ""
    assert services_file.read_bytes() == before


def test_the_command_reports_a_broken_file(services_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services_file.write_text('{"services": [{"slug": "a"}]}')
    assert cli.main(["services", "list"]) == 1
    assert "service #1 in the services file: a service needs name" in capsys.readouterr().err


# --- /_admin/services -----------------------------------------------------------------------

ADMIN = {"Authorization": "Bearer admin-secret"}


def _admin(tmp_path: Path, calls: list[tuple[str, str, Any]], admin_token: str = "admin-secret") -> list[Any]:
    """Make ``calls`` (method, path, JSON body or raw bytes) to the embedded ingest app, the one
    that serves the admin routes' writes; returns the responses."""
    settings = Settings(
        data_dir=tmp_path,
        services_file=tmp_path / "services.json",
        admin_token=SecretStr(admin_token),
    )
    app = ingest_app(settings)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://perfplat") as client:
            out = []
            for method, path, body in calls:
                headers = dict(ADMIN)
                if isinstance(body, bytes):
                    out.append(await client.request(method, path, content=body, headers=headers))
                else:
                    out.append(await client.request(method, path, json=body, headers=headers))
            return out

    return asyncio.run(go())


def test_the_admin_api_creates_lists_configures_and_rotates(tmp_path: Path) -> None:
    created, listed, patched, rotated, again = _admin(
        tmp_path,
        [
            (
                "POST",
                "/_admin/services",
                {
                    "slug": "s",
                    "name": "S",
                    "health_check_url": "https://s.example/",
                    "alerts": [{"id": "late", "data_set": "a/b", "webhook": "https://h.example/"}],
                },
            ),
            ("GET", "/_admin/services", None),
            ("PATCH", "/_admin/services/s", {"probe_interval_s": 120, "name": "Ess"}),
            ("POST", "/_admin/services/s/token", None),
            ("GET", "/_admin/services", None),
        ],
    )
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    body = created.json()
    token = body.pop("bearer_token")
    assert body == {
        "slug": "s",
        "name": "S",
        "group": "",
        "health_check_url": "https://s.example/",
        "probe_interval_s": 60,
        "probe_timeout_s": 10,
        "alerts": [{"id": "late", "data_set": "a/b", "webhook": "https://h.example/"}],
    }
    assert listed.json() == [body]
    assert patched.status_code == 200
    assert (patched.json()["probe_interval_s"], patched.json()["name"]) == (120, "Ess")
    assert rotated.status_code == 200 and rotated.json()["slug"] == "s"
    stored = ServiceRegistryFile(tmp_path / "services.json").current().services["s"]
    assert token_matches(rotated.json()["bearer_token"], stored.token_hash)
    assert not token_matches(token, stored.token_hash)
    assert "token" not in again.text


X = {"slug": "x", "name": "X"}
SERVICES, TAKEN = "/_admin/services", "/_admin/services/taken"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", SERVICES, {**X, "health_check_url": "file:///etc/passwd"}, 400, "not file:"),
        ("POST", SERVICES, {**X, "health_check_url": "javascript:alert(1)"}, 400, "not javascript:"),
        ("POST", SERVICES, {**X, "health_check_url": "http://u:p@x/"}, 400, "must not carry credentials"),
        ("POST", SERVICES, {**X, "probe_interval_s": 1}, 400, "from 5 to 86400"),
        ("POST", SERVICES, {**X, "probe_interval_s": 4.5}, 400, "whole number"),
        ("POST", SERVICES, {**X, "alerts": ["down"]}, 400, "alerts must be a list of JSON objects"),
        ("POST", SERVICES, {**X, "token_hash": "sha256$a$b"}, 400, "token_hash cannot be set"),
        ("POST", SERVICES, {"slug": "x"}, 400, "a service needs name"),
        ("POST", SERVICES, {"slug": "taken", "name": "Again"}, 409, "service taken already exists"),
        ("POST", SERVICES, [X], 400, "the body must be a JSON object"),
        ("POST", SERVICES, b"{nope", 400, "the body must be a JSON object"),
        ("PATCH", TAKEN, {"health_check_url": "ftp://x/"}, 400, "not ftp:"),
        ("PATCH", TAKEN, {"probe_interval_s": 3}, 400, "from 5 to 86400"),
        ("PATCH", TAKEN, {"probe_timeout_s": 60}, 400, "must be shorter than probe_interval_s"),
        ("PATCH", TAKEN, {"colour": "red"}, 400, "unknown service settings: colour"),
        ("PATCH", TAKEN, {"slug": "other"}, 400, "cannot be changed here"),
        ("PATCH", TAKEN, {"bearer_token": "t"}, 400, "cannot be changed here"),
        ("PATCH", "/_admin/services/nope", {"name": "N"}, 404, "No service named nope"),
        ("POST", "/_admin/services/nope/token", None, 404, "No service named nope"),
    ],
)
def test_the_admin_api_refuses_bad_input_clearly_and_changes_nothing(
    tmp_path: Path, method: str, path: str, body: Any, status: int, message: str
) -> None:
    first, answer = _admin(
        tmp_path, [("POST", "/_admin/services", {"slug": "taken", "name": "Taken"}), (method, path, body)]
    )
    before = (tmp_path / "services.json").read_bytes()
    assert first.status_code == 201
    assert answer.status_code == status
    assert answer.json() == {"status": "error", "message": answer.json()["message"]}
    assert message in answer.json()["message"]
    assert (tmp_path / "services.json").read_bytes() == before


def test_the_admin_api_needs_the_admin_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token=SecretStr("admin-secret"))

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=ingest_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://perfplat") as client:
            return (
                await client.get("/_admin/services"),
                await client.post("/_admin/services", json={"slug": "s", "name": "S"}),
                await client.get("/_admin/services", headers={"Authorization": "Bearer wrong"}),
            )

    for response in asyncio.run(go()):
        assert response.status_code == 401 and response.headers["www-authenticate"] == "bearer"
    assert not (tmp_path / "services.json").exists()
    (off,) = _admin(tmp_path, [("GET", "/_admin/services", None)], admin_token="")
    assert off.status_code == 403 and "switched off" in off.json()["message"]
