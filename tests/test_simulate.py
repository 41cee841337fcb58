"""Behaviour simulator: determinism, schema, drift and type-dependent fade."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train.simulate import (
    CHUNK_USERS,
    DEFAULT_SAMPLE,
    START_EPOCH_SECONDS,
    SimulationConfig,
    add_arguments,
    config_from_args,
    iter_event_chunks,
    load_simulated,
    main,
    simulate_events,
    write_events,
)

SMALL = SimulationConfig(users=300, days=150, seed=1)
DAY = 86_400


@pytest.fixture(scope="module")
def small_events() -> pd.DataFrame:
    return simulate_events(SMALL)


def test_same_seed_same_events(small_events: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(simulate_events(SMALL), small_events)


def test_other_seed_other_events(small_events: pd.DataFrame) -> None:
    other = simulate_events(SimulationConfig(users=300, days=150, seed=2))
    assert not other.equals(small_events)


def test_more_users_keep_first_users() -> None:
    config = SimulationConfig(users=CHUNK_USERS + 10, days=5, seed=3, burn_in_days=5)
    chunks = list(iter_event_chunks(config))
    first = simulate_events(replace(config, users=CHUNK_USERS))
    assert len(chunks) == 2
    pd.testing.assert_frame_equal(chunks[0], first)


def test_schema_columns_and_dtypes(small_events: pd.DataFrame) -> None:
    assert list(small_events.columns) == [
        "user_id", "topic", "event_type", "timestamp", "value", "item_id"
    ]
    assert small_events["timestamp"].dtype == np.int64
    assert small_events["value"].dtype == np.float64
    for column in ("user_id", "topic", "event_type", "item_id"):
        assert pd.api.types.is_string_dtype(small_events[column]), column


def test_event_types_and_values(small_events: pd.DataFrame) -> None:
    assert set(small_events["event_type"]) == {"view", "like", "comment", "share"}
    assert (small_events["value"] == 1.0).all()


def test_timestamps_within_days(small_events: pd.DataFrame) -> None:
    assert small_events["timestamp"].min() >= START_EPOCH_SECONDS
    assert small_events["timestamp"].max() < START_EPOCH_SECONDS + 150 * DAY


def test_sorted_by_user_then_time(small_events: pd.DataFrame) -> None:
    keys = small_events[["user_id", "timestamp"]]
    assert keys.equals(keys.sort_values(["user_id", "timestamp"], ignore_index=True))


def test_users_differ_in_activity(small_events: pd.DataFrame) -> None:
    per_user = small_events.groupby("user_id").size()
    assert per_user.quantile(0.9) > 4 * per_user.quantile(0.1)


def test_every_user_has_events(small_events: pd.DataFrame) -> None:
    assert small_events["user_id"].nunique() == SMALL.users


def test_topics_drift_over_time(small_events: pd.DataFrame) -> None:
    day = (small_events["timestamp"] - START_EPOCH_SECONDS) // DAY
    first = small_events[day < 30].groupby("user_id")["topic"].agg(set)
    last = small_events[day >= 120].groupby("user_id")["topic"].agg(set)
    users = first.index.intersection(last.index)
    new_topics = [len(last[u] - first[u]) > 0 for u in users]
    assert np.mean(new_topics) > 0.5


def _return_rate_after_isolated(events: pd.DataFrame) -> pd.Series:
    """Share of isolated events followed by the same topic 7 to 45 days later.

    An event is isolated when its (user, topic) pair had no event in the 14
    days before it and has none in the day after it, so the return reflects
    the interest that this one event left.
    """
    ordered = events.sort_values(["user_id", "topic", "timestamp"], ignore_index=True)
    pair = pd.factorize(ordered["user_id"] + "|" + ordered["topic"])[0]
    ts = ordered["timestamp"].to_numpy()
    key = pair.astype(np.int64) * 10**10 + ts

    def count_between(low: np.ndarray, high: np.ndarray) -> np.ndarray:
        return np.searchsorted(key, high, side="right") - np.searchsorted(
            key, low, side="right"
        )

    before = np.searchsorted(key, key, side="left") - np.searchsorted(
        key, key - 14 * DAY, side="left"
    )
    next_day = count_between(key, key + DAY)
    later = count_between(key + 7 * DAY, key + 45 * DAY)
    isolated = (
        (before == 0)
        & (next_day == 0)
        & (ts >= ts.min() + 14 * DAY)
        & (ts + 45 * DAY <= ts.max())
    )
    frame = pd.DataFrame({"type": ordered["event_type"], "returned": later > 0})
    return frame[isolated].groupby("type")["returned"].mean()


def test_share_sustains_interest_longer_than_view(small_events) -> None:
    rates = _return_rate_after_isolated(small_events)
    assert rates["share"] > rates["view"] + 0.08
    assert rates["comment"] > rates["view"] + 0.05


def test_default_sample_size() -> None:
    assert DEFAULT_SAMPLE.users * DEFAULT_SAMPLE.days == 480_000


def test_load_simulated_fingerprint() -> None:
    config = SimulationConfig(users=20, days=10, seed=4)
    first = load_simulated(config)
    second = load_simulated(config)
    assert first.source == "simulated"
    assert first.files[0]["rows"] == len(first.events)
    assert first.files[0]["sha256"] == second.files[0]["sha256"]
    assert "seed=4" in first.files[0]["name"]


def test_invalid_config_rejected() -> None:
    with pytest.raises(ValueError) as raised:
        SimulationConfig(users=0)
    assert str(raised.value) == "invalid simulation setting users=0; expected >= 1"


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz", "e.parquet", "e.jsonl",
                                  "e.jsonl.gz"])
def test_write_round_trip(name: str, tmp_path: Path) -> None:
    events = simulate_events(SimulationConfig(users=5, days=10, seed=5))
    path = tmp_path / name
    rows = write_events(events, path)
    if name.endswith(".parquet"):
        back = pd.read_parquet(path)
    elif ".csv" in name:
        back = pd.read_csv(path, dtype={"user_id": str, "item_id": str})
    else:
        back = pd.read_json(path, lines=True, dtype=False)
    assert rows == len(events)
    pd.testing.assert_frame_equal(back, events, check_dtype=False)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_write_unknown_suffix_rejected(tmp_path: Path) -> None:
    events = simulate_events(SimulationConfig(users=2, days=2, seed=5))
    with pytest.raises(ValueError, match=r"cannot tell the output format of .*e\.txt"):
        write_events(events, tmp_path / "e.txt")


def test_cli_writes_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "events.parquet"
    code = main(["--out", str(out), "--users", "7", "--days", "5", "--seed", "9"])
    written = pd.read_parquet(out)
    expected = simulate_events(SimulationConfig(users=7, days=5, seed=9))
    assert code == 0
    assert len(written) == len(expected)
    assert f"wrote {len(expected):,} events of 7 users" in capsys.readouterr().out


def test_cli_events_target_sets_users() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", "x.csv", "--days", "30",
                              "--events-target", "100000"])
    config = config_from_args(args)
    events = len(simulate_events(config))
    assert 80_000 < events < 120_000
