"""Labels: shares of the horizon's event weight, and the labelled dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infer.features import FeatureConfig, build_features
from infer.schema import SECONDS_PER_DAY
from train.config import LabelSettings
from train.labels import build_dataset, horizon_labels, sort_by_time

DAY = SECONDS_PER_DAY
T = 200 * DAY
SETTINGS = LabelSettings(lookback_days=30.0, horizon_days=7.0, stride_days=7.0)
CONFIG = FeatureConfig(event_types=("view", "like", "other"), lookback_days=30.0)
COLUMNS = ["user_id", "topic", "event_type", "timestamp", "value"]

# History: u on a and b, w on a, v on a. In the horizon (T, T + 7 d], u has
# two events on a and one on c, which is not a candidate. v has one event
# exactly at T + H and one just after it, and w has none.
EVENTS = pd.DataFrame(
    [
        ("u", "a", "view", T - DAY, 1.0),
        ("u", "b", "like", T - 3 * DAY, 1.0),
        ("w", "a", "view", T, 1.0),
        ("v", "a", "view", T - DAY, 1.0),
        ("u", "a", "view", T + DAY, 1.0),
        ("u", "a", "like", T + 2 * DAY, 1.0),
        ("u", "c", "view", T + 3 * DAY, 1.0),
        ("v", "a", "view", T + 7 * DAY, 1.0),
        ("v", "b", "view", T + 7 * DAY + 1, 1.0),
        ("w", "a", "view", T + 8 * DAY, 1.0),
    ],
    columns=COLUMNS,
)


@pytest.fixture(scope="module")
def labelled() -> dict[tuple[str, str], float]:
    rows = build_dataset(
        sort_by_time(EVENTS), [T], CONFIG, SETTINGS, (7.0,), progress=False
    )
    keys = zip(rows.keys["user_id"], rows.keys["topic"], strict=True)
    return dict(zip(keys, rows.labels.tolist(), strict=True))


def test_label_is_share_of_horizon_events(labelled) -> None:
    assert labelled[("u", "a")] == pytest.approx(2 / 3)


def test_candidate_without_horizon_events_is_zero(labelled) -> None:
    assert labelled[("u", "b")] == 0.0


def test_horizon_only_topic_is_not_candidate(labelled) -> None:
    assert ("u", "c") not in labelled


def test_event_at_horizon_end_counts(labelled) -> None:
    assert labelled[("v", "a")] == 1.0


def test_user_without_horizon_events_dropped(labelled) -> None:
    assert ("w", "a") not in labelled


def test_event_weights_change_share() -> None:
    weighted = LabelSettings(
        lookback_days=30.0,
        horizon_days=7.0,
        stride_days=7.0,
        event_weights=(("like", 3.0),),
    )
    horizon = EVENTS[(EVENTS["timestamp"] > T) & (EVENTS["timestamp"] <= T + 7 * DAY)]
    keys = pd.DataFrame({"user_id": ["u"], "topic": ["a"]})
    labels = horizon_labels(horizon, keys, weighted)
    assert labels[0] == pytest.approx(4 / 5)


def simulated_like(seed: int, users: int = 60, days: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = users * days
    return pd.DataFrame(
        {
            "user_id": rng.choice([f"u{i}" for i in range(users)], n),
            "topic": rng.choice(
                list("abcdefgh"), n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]
            ),
            "event_type": rng.choice(["view", "like"], n, p=[0.8, 0.2]),
            "timestamp": rng.integers(0, days * DAY, n).astype(np.int64),
            "value": np.ones(n),
        }
    )


def test_label_sums_at_most_one() -> None:
    events = sort_by_time(simulated_like(5))
    cutoffs = np.arange(30, 110, 7) * DAY
    rows = build_dataset(events, cutoffs, CONFIG, SETTINGS, (7.0,), progress=False)
    sums = (
        pd.Series(rows.labels)
        .groupby([rows.keys["user_id"], rows.keys["cutoff"]])
        .sum()
    )
    assert len(sums) > 0
    assert sums.max() <= 1.0 + 1e-6


def test_labels_within_unit_interval() -> None:
    events = sort_by_time(simulated_like(6))
    rows = build_dataset(events, [60 * DAY], CONFIG, SETTINGS, (7.0,), progress=False)
    assert rows.labels.min() >= 0.0
    assert rows.labels.max() <= 1.0


def test_dataset_features_ignore_future() -> None:
    events = sort_by_time(simulated_like(7))
    cutoff = 60 * DAY
    rows = build_dataset(events, [cutoff], CONFIG, SETTINGS, (7.0,), progress=False)
    past_only = events[events["timestamp"] <= cutoff]
    # Without the later events no label remains, so compare with the
    # builder run directly on the past only.
    direct = build_features(past_only, cutoff, CONFIG)
    table = pd.DataFrame(direct.values, columns=direct.names)
    table["user_id"] = direct.keys["user_id"].to_numpy()
    table["topic"] = direct.keys["topic"].to_numpy()
    merged = rows.keys.merge(table, on=["user_id", "topic"], how="left")
    np.testing.assert_array_equal(
        merged[rows.names].to_numpy(np.float32), rows.features
    )


def test_dataset_empty_without_history() -> None:
    events = sort_by_time(simulated_like(8))
    rows = build_dataset(events, [-10 * DAY], CONFIG, SETTINGS, (7.0,), progress=False)
    assert len(rows) == 0
    assert rows.features.shape == (0, len(rows.names))
