"""The file behind the data-set and services registries (``pipeline.registry_file``): hashed
tokens, atomic read-modify-write under a lock shared by processes, re-reading on change."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline import datasets, registry_file
from pipeline.registry_file import AlreadyExists, hash_token, new_token, token_matches
from pipeline.services import ServiceConfig, ServiceRegistry, ServiceRegistryFile
from tests.unit.test_purity import forbidden_imports


def test_tokens_are_salted_hashes_compared_whole() -> None:
    token = new_token()
    first, second = hash_token(token), hash_token(token)
    assert first != second  # salted
    assert token not in first
    assert token_matches(token, first) and token_matches(token, second)
    assert not token_matches(token[:-1], first)
    assert not token_matches(token, "sha256$nohash")
    assert not token_matches(token, "plain")


def test_the_data_set_module_still_offers_the_token_functions() -> None:
    assert datasets.hash_token is registry_file.hash_token
    assert datasets.token_matches is registry_file.token_matches
    assert datasets.new_token is registry_file.new_token


def test_the_registry_modules_are_pure() -> None:
    for module in ("pipeline.registry_file", "pipeline.services", "pipeline.datasets"):
        assert forbidden_imports(module) == []


def test_a_change_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    services = ServiceRegistryFile(path)
    services.create(ServiceConfig("a", "A"))
    before = path.read_bytes()

    def broken(contents: ServiceRegistry) -> None:
        contents.services.clear()
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError):
        services.update(broken)
    with pytest.raises(ValueError, match="probe_interval_s"):
        services.configure("a", probe_interval_s=1)
    with pytest.raises(AlreadyExists, match="service a already exists"):
        services.create(ServiceConfig("a", "Another A"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["services.json", "services.json.lock"]


def test_every_process_sees_a_change_even_of_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    writer, reader = ServiceRegistryFile(path), ServiceRegistryFile(path, check_interval_s=0)
    assert reader.current().services == {}
    writer.create(ServiceConfig("a", "Name A"))
    assert reader.current().services["a"].name == "Name A"
    writer.configure("a", name="Name B")  # same length, likely the same mtime tick
    assert reader.current().services["a"].name == "Name B"
    path.unlink()
    assert reader.current().services == {}


def test_a_reader_checks_the_file_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    writer, reader = ServiceRegistryFile(path), ServiceRegistryFile(path, check_interval_s=3600)
    assert reader.current().services == {}
    writer.create(ServiceConfig("a", "A"))
    assert reader.current().services == {}  # not looked at again yet
    assert "a" in reader.reload().services


def test_a_broken_file_is_reported_until_it_is_fixed(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    reader = ServiceRegistryFile(path, check_interval_s=0)
    path.write_text('{"services": [')
    with pytest.raises(ValueError, match="not JSON"):
        reader.current()
    with pytest.raises(ValueError, match="not JSON"):
        reader.current()
    path.write_text('{"services": [{"slug": "a", "name": "A"}]}')
    assert list(reader.current().services) == ["a"]


_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline.services import ServiceConfig, ServiceRegistryFile

    path, worker = Path(sys.argv[1]), sys.argv[2]
    services = ServiceRegistryFile(path)
    for i in range(25):
        services.create(ServiceConfig(f"w{worker}-{i}", f"Service {i}"))
        services.configure(f"w{worker}-{i}", group=f"g{worker}")
    """
)


def test_concurrent_processes_lose_no_change(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(path), str(w)], env=env) for w in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    found = ServiceRegistryFile(path).current().services
    assert len(found) == 100
    assert all(config.group == f"g{slug[1]}" for slug, config in found.items())
