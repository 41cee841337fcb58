"""Training data sources: spec dispatch, behaviour files, column mapping."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from infer.errors import InputContractError
from tests.conftest import write_tiny_movielens
from train.movielens import FOLDER_NAME
from train.simulate import SimulationConfig, simulate_events, write_events
from train.sources import behaviour_files, load_source, parse_column_mapping


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return simulate_events(SimulationConfig(users=6, days=10, seed=21))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- column mapping --------------------------------------------------------


def test_mapping_parsed() -> None:
    got = parse_column_mapping("userId=user_id, movieId = item_id,ts=timestamp")
    assert got == {"userId": "user_id", "movieId": "item_id", "ts": "timestamp"}


def test_mapping_empty_text() -> None:
    assert parse_column_mapping("  ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("userId", "invalid column mapping 'userId': expected source=target, "
                   "for example userId=user_id"),
        ("userId=", "invalid column mapping 'userId=': expected source=target, "
                    "for example userId=user_id"),
        ("=user_id", "invalid column mapping '=user_id': expected source=target, "
                     "for example userId=user_id"),
        ("userId=user_id,,", "invalid column mapping '': expected source=target, "
                             "for example userId=user_id"),
        ("userId=uid", "invalid column mapping 'userId=uid': unknown target column "
                       "'uid', expected one of user_id, topic, event_type, "
                       "timestamp, item_id, value"),
        ("a=user_id,a=topic", "invalid column mapping: source column 'a' is "
                              "mapped twice"),
        ("a=user_id,b=user_id", "invalid column mapping: target column "
                                "'user_id' is mapped twice"),
    ],
)
def test_mapping_malformed_rejected(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_column_mapping(text)
    assert str(raised.value) == message


# --- dispatch ----------------------------------------------------------------


@pytest.mark.slow
def test_simulated_spec_default_sample() -> None:
    data = load_source("simulated")
    assert data.source == "simulated"
    assert len(data.events) > 1_000_000
    assert data.files[0]["rows"] == len(data.events)


def test_movielens_folder_spec(tiny_movielens_dir: Path) -> None:
    data = load_source(str(tiny_movielens_dir))
    assert data.source == "movielens"
    assert len(data.events) == 8


def test_movielens_spec_uses_data_dir(tmp_path: Path) -> None:
    write_tiny_movielens(tmp_path / FOLDER_NAME)
    data = load_source("movielens", data_dir=tmp_path)
    assert data.source == "movielens"
    assert len(data.events) == 8


def test_columns_rejected_for_movielens(tiny_movielens_dir: Path) -> None:
    with pytest.raises(ValueError, match="column mapping applies to behaviour files"):
        load_source(str(tiny_movielens_dir), columns={"userId": "user_id"})


def test_missing_path_rejected(tmp_path: Path) -> None:
    spec = str(tmp_path / "nope.csv")
    with pytest.raises(InputContractError) as raised:
        load_source(spec)
    assert str(raised.value) == (
        f"training data {spec!r} not found; expected 'simulated', 'movielens', "
        f"a MovieLens folder, or behaviour files (a file, folder or glob)"
    )


def test_empty_folder_rejected(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not events")
    with pytest.raises(InputContractError, match="no behaviour files in folder"):
        load_source(str(tmp_path))


def test_glob_without_match_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputContractError, match="no behaviour files in glob"):
        load_source(str(tmp_path / "*.parquet"))


# --- canonical behaviour files ---------------------------------------------


def test_folder_of_files_loaded(events: pd.DataFrame, tmp_path: Path) -> None:
    half = len(events) // 2
    write_events(events.iloc[:half], tmp_path / "a.csv.gz")
    write_events(events.iloc[half:], tmp_path / "b.parquet")
    data = load_source(str(tmp_path))
    assert data.source == "files"
    assert len(data.events) == len(events)
    assert [item["name"] for item in data.files] == ["a.csv.gz", "b.parquet"]
    assert [item["rows"] for item in data.files] == [half, len(events) - half]
    assert data.files[1]["sha256"] == _sha256(tmp_path / "b.parquet")


def test_glob_loaded(events: pd.DataFrame, tmp_path: Path) -> None:
    write_events(events, tmp_path / "day1.jsonl")
    write_events(events, tmp_path / "day2.jsonl.gz")
    write_events(events, tmp_path / "other.parquet")
    data = load_source(str(tmp_path / "day*"))
    assert [item["name"] for item in data.files] == ["day1.jsonl", "day2.jsonl.gz"]
    assert len(data.events) == 2 * len(events)


def test_file_events_match_written(events: pd.DataFrame, tmp_path: Path) -> None:
    write_events(events, tmp_path / "e.parquet")
    loaded = load_source(str(tmp_path / "e.parquet")).events
    for column in ("user_id", "topic", "event_type", "item_id"):
        assert loaded[column].astype(str).tolist() == events[column].tolist(), column
    assert loaded["timestamp"].tolist() == events["timestamp"].tolist()
    assert loaded["value"].tolist() == events["value"].tolist()


def test_column_mapping_applied(events: pd.DataFrame, tmp_path: Path) -> None:
    renamed = events.rename(columns={"user_id": "userId", "timestamp": "ts"})
    renamed.to_csv(tmp_path / "e.csv", index=False)
    mapping = parse_column_mapping("userId=user_id,ts=timestamp")
    data = load_source(str(tmp_path / "e.csv"), columns=mapping)
    assert len(data.events) == len(events)
    assert set(data.events["user_id"].astype(str)) == set(events["user_id"])


def test_behaviour_files_skip_hidden(events: pd.DataFrame, tmp_path: Path) -> None:
    write_events(events, tmp_path / "e.csv")
    (tmp_path / ".e.csv.partial").write_text("user_id\n")
    (tmp_path / "README.md").write_text("notes")
    assert behaviour_files(str(tmp_path)) == [tmp_path / "e.csv"]
