"""The data-set registry: configuration, hashed tokens, the file that several processes share."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.datasets import DataSetConfig, Registry, RegistryFile, data_set_name, hash_token, token_matches
from pipeline.staleness import newest_by_set, status


def test_names_follow_the_original() -> None:
    assert data_set_name("carers-allowance", "weekly-claims") == "carers_allowance_weekly_claims"


def test_tokens_are_stored_hashed_and_compared() -> None:
    stored = hash_token("s3cret")
    assert "s3cret" not in stored
    assert token_matches("s3cret", stored)
    assert not token_matches("s3creT", stored)
    assert not token_matches("", stored)
    assert not token_matches("anything", "")


@pytest.mark.parametrize(
    "doc",
    [
        {"data_group": "Bad", "data_type": "t"},
        {"data_group": "g", "data_type": "t t"},
        {"data_group": "g", "data_type": "t", "max_age_expected": -1},
        {"data_group": "g", "data_type": "t", "colour": "red"},
        {"data_group": "g", "data_type": "t", "upload_format": "pdf"},
    ],
)
def test_bad_configuration_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DataSetConfig.from_doc(doc)


def test_a_hand_written_plain_token_is_hashed_on_load() -> None:
    registry = Registry.from_bytes(
        b'{"data_sets": [{"data_group": "g", "data_type": "t", "bearer_token": "abc"}]}'
    )
    config = registry.get("g", "t")
    assert config is not None and token_matches("abc", config.token_hash)
    assert b"abc" not in registry.to_bytes()


def test_file_create_rotate_configure_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "datasets.json"
    a, b = RegistryFile(path), RegistryFile(path, check_interval_s=0)
    token = a.create(DataSetConfig("g", "t", auto_ids=("x",)))
    config = b.current().get("g", "t")
    assert config is not None and token_matches(token, config.token_hash) and config.auto_ids == ("x",)
    with pytest.raises(ValueError, match="already exists"):
        a.create(DataSetConfig("g", "t"))
    new = b.rotate_token("g_t")
    assert not token_matches(token, b.current().sets["g_t"].token_hash)
    assert token_matches(new, b.current().sets["g_t"].token_hash)
    assert a.configure("g_t", realtime=True).realtime
    with pytest.raises(KeyError):
        a.rotate_token("nope")


def test_group_and_type_must_both_match() -> None:
    registry = Registry({"a_b_c": DataSetConfig("a-b", "c")})
    assert registry.get("a-b", "c") is not None
    assert registry.get("a", "b-c") is None  # same name, different set


def test_staleness_by_newest_timestamp_of_the_current_epoch() -> None:
    configs = [
        DataSetConfig("g", "fresh", max_age_expected=100),
        DataSetConfig("g", "old", max_age_expected=100),
        DataSetConfig("g", "empty", max_age_expected=100),
        DataSetConfig("g", "unchecked", max_age_expected=None),
    ]
    newest = newest_by_set([("g_fresh", 0, 950), ("g_old", 0, 990), ("g_old", 3, 800)], [("g_old", 3)])
    assert newest == {"g_fresh": 950, "g_old": 800}
    doc = status(configs, newest, 1_000_000)
    assert doc["status"] == "not okay" and doc["message"] == "2 data-sets are out of date"
    assert [(d["name"], d["seconds-out-of-date"]) for d in doc["data_sets"]] == [
        ("g_empty", None),
        ("g_old", 100),
    ]
    assert status(configs[:1], newest, 1_000_000) == {
        "status": "ok",
        "data_sets": None,
        "message": "All data_sets are in date",
    }
