"""Cutoffs and the time split: spacing, gaps between splits, vocabulary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infer.schema import SECONDS_PER_DAY
from train.config import LabelSettings
from train.labels import event_type_vocabulary, make_cutoffs, split_cutoffs

DAY = SECONDS_PER_DAY
SETTINGS = LabelSettings(lookback_days=90.0, horizon_days=14.0, stride_days=7.0)
START = 1_704_067_200 + 5 * 3600  # 2024-01-01 05:00 UTC
END = START + 240 * DAY


@pytest.fixture(scope="module")
def cutoffs() -> np.ndarray:
    return make_cutoffs(START, END, SETTINGS)


@pytest.fixture(scope="module")
def splits(cutoffs) -> dict[str, np.ndarray]:
    return split_cutoffs(cutoffs, SETTINGS)


def test_cutoffs_start_at_midnight_after_stride(cutoffs) -> None:
    assert cutoffs[0] == 1_704_067_200 + 7 * DAY


def test_cutoffs_stride_apart(cutoffs) -> None:
    assert set(np.diff(cutoffs)) == {7 * DAY}


def test_cutoffs_horizon_fully_observed(cutoffs) -> None:
    assert cutoffs[-1] + 14 * DAY <= END
    assert cutoffs[-1] + 21 * DAY > END


def test_cutoffs_empty_for_short_span() -> None:
    assert len(make_cutoffs(START, START + 10 * DAY, SETTINGS)) == 0


def test_splits_in_time_order(splits) -> None:
    assert splits["train"].max() < splits["validation"].min()
    assert splits["validation"].max() < splits["test"].min()


def test_train_labels_end_before_validation(splits) -> None:
    assert splits["train"].max() + 14 * DAY <= splits["validation"].min()


def test_validation_labels_end_before_test(splits) -> None:
    assert splits["validation"].max() + 14 * DAY <= splits["test"].min()


def test_splits_disjoint(splits) -> None:
    together = np.concatenate(list(splits.values()))
    assert len(np.unique(together)) == len(together)


def test_gap_drops_one_cutoff_per_boundary(cutoffs, splits) -> None:
    kept = sum(len(part) for part in splits.values())
    assert kept == len(cutoffs) - 2


def test_test_split_is_latest_fraction(cutoffs, splits) -> None:
    assert len(splits["test"]) == round(len(cutoffs) * 0.15)
    assert splits["test"][-1] == cutoffs[-1]


def test_split_too_short_raises() -> None:
    few = make_cutoffs(START, START + 40 * DAY, SETTINGS)
    with pytest.raises(ValueError, match="split has no cutoffs"):
        split_cutoffs(few, SETTINGS)


def test_vocabulary_by_frequency_catch_all_last() -> None:
    events = pd.DataFrame(
        {
            "event_type": ["like", "view", "view", "share", "view", "like"],
            "timestamp": [1, 2, 3, 4, 5, 6],
        }
    )
    assert event_type_vocabulary(events, until=6) == ("view", "like", "share", "other")


def test_vocabulary_ignores_later_events() -> None:
    events = pd.DataFrame(
        {
            "event_type": ["view", "view", "purchase"],
            "timestamp": [1, 2, 30],
        }
    )
    assert event_type_vocabulary(events, until=10) == ("view", "other")


def test_vocabulary_merges_existing_catch_all() -> None:
    events = pd.DataFrame(
        {"event_type": ["other", "other", "view"], "timestamp": [1, 2, 3]}
    )
    assert event_type_vocabulary(events, until=3) == ("view", "other")
