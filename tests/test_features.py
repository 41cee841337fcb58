"""Feature builder: hand-computed values, the history bounds and leakage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from infer.features import FeatureConfig, build_features
from infer.schema import SECONDS_PER_DAY

DAY = SECONDS_PER_DAY
T = 100 * DAY
CONFIG = FeatureConfig(
    event_types=("view", "like", "other"),
    lookback_days=10.0,
    windows_days=(1.0, 7.0, 30.0),
    half_lives_days=(1.0,),
)


def events(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["user_id", "topic", "event_type", "timestamp", "value"]
    )


# User u has two views on topic a, exactly at T and 2 days before, and a
# like on b 5 days before. A like on c exactly at T - L is outside the
# history, and a view on a one second after T is in the future.
HAND_EVENTS = events(
    [
        ("u", "a", "view", T, 1.0),
        ("u", "a", "view", T - 2 * DAY, 3.0),
        ("u", "b", "like", T - 5 * DAY, 1.0),
        ("u", "c", "like", T - 10 * DAY, 1.0),
        ("u", "a", "view", T + 1, 1.0),
    ]
)


@pytest.fixture(scope="module")
def hand_features() -> dict[str, dict[str, float]]:
    matrix = build_features(HAND_EVENTS, T, CONFIG)
    rows = {}
    for i, topic in enumerate(matrix.keys["topic"]):
        rows[topic] = dict(zip(matrix.names, matrix.values[i].tolist(), strict=True))
    return rows


def test_candidates_exclude_event_at_lookback_start(hand_features) -> None:
    assert sorted(hand_features) == ["a", "b"]


def test_window_counts_include_event_at_t(hand_features) -> None:
    assert hand_features["a"]["log_count_view_1d"] == pytest.approx(math.log1p(1))


def test_window_counts_exclude_event_after_t(hand_features) -> None:
    assert hand_features["a"]["log_count_view_7d"] == pytest.approx(math.log1p(2))


def test_windows_longer_than_lookback_dropped(hand_features) -> None:
    assert "log_count_view_30d" not in hand_features["a"]


def test_days_since_last_event_at_t_is_zero(hand_features) -> None:
    assert hand_features["a"]["days_since_last_view"] == 0.0


def test_days_since_missing_type_is_lookback(hand_features) -> None:
    assert hand_features["a"]["days_since_last_like"] == 10.0


def test_days_since_first_event(hand_features) -> None:
    assert hand_features["a"]["days_since_first_any"] == pytest.approx(2.0)


def test_decayed_sum_by_type(hand_features) -> None:
    assert hand_features["a"]["log_decayed_view_1d"] == pytest.approx(math.log1p(1.25))


def test_decayed_share_of_user(hand_features) -> None:
    expected = 1.25 / (1.25 + 2.0**-5)
    assert hand_features["a"]["share_decayed_1d"] == pytest.approx(expected)


def test_count_share_over_lookback(hand_features) -> None:
    assert hand_features["b"]["share_count_lookback"] == pytest.approx(1 / 3)


def test_user_activity_and_breadth(hand_features) -> None:
    assert hand_features["b"]["log_user_events_lookback"] == pytest.approx(
        math.log1p(3)
    )
    assert hand_features["b"]["user_active_topics"] == 2.0


def test_mean_value_on_topic(hand_features) -> None:
    assert hand_features["a"]["mean_value"] == pytest.approx(2.0)


def random_events(seed: int, n: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.choice([f"u{i}" for i in range(40)], n),
            "topic": rng.choice(list("abcdefg"), n),
            "event_type": rng.choice(["view", "like", "share"], n),
            "timestamp": rng.integers(T - 30 * DAY, T + 30 * DAY, n).astype(np.int64),
            "value": rng.uniform(0, 5, n),
        }
    )


def sorted_features(frame: pd.DataFrame) -> pd.DataFrame:
    matrix = build_features(frame, T, CONFIG)
    table = pd.DataFrame(matrix.values, columns=matrix.names)
    table.insert(0, "topic", matrix.keys["topic"].to_numpy())
    table.insert(0, "user_id", matrix.keys["user_id"].to_numpy())
    return table.sort_values(["user_id", "topic"]).reset_index(drop=True)


def test_leakage_moving_future_events() -> None:
    base = random_events(1)
    moved = base.copy()
    future = moved["timestamp"] > T
    rng = np.random.default_rng(2)
    moved.loc[future, "timestamp"] = rng.integers(T + 1, T + 400 * DAY, future.sum())
    pd.testing.assert_frame_equal(sorted_features(base), sorted_features(moved))


def test_leakage_adding_future_events() -> None:
    base = random_events(3)
    extra = random_events(4)
    extra["timestamp"] = T + 1 + (extra["timestamp"] - extra["timestamp"].min())
    # New users and topics too: a future event must not create a candidate.
    extra.loc[::3, "user_id"] = "newcomer"
    extra.loc[::5, "topic"] = "z"
    combined = pd.concat([base, extra], ignore_index=True)
    pd.testing.assert_frame_equal(sorted_features(base), sorted_features(combined))
