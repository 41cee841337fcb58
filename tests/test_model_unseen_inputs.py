"""A trained model on values and event types that never varied in training.

The simulated training data has value 1.0 everywhere and no catch-all
events, so those features are constant in training. The model must ignore
them instead of saturating on any other value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infer.bundle import Bundle, load_bundle
from infer.scorer import score_events
from train.model import (
    IGNORED_FEATURE_VARIANCE,
    constant_features,
    normalization_statistics,
)

DAY = 86_400
AS_OF = 1_718_000_000


@pytest.fixture(scope="module")
def bundle(trained_bundle: Path) -> Bundle:
    return load_bundle(trained_bundle, threads=1)


def two_topic_history(event_type: str, value: float) -> pd.DataFrame:
    """One user: topic 'a' recent and busy, topic 'b' older and sparse."""
    ages = {"a": [0.5, 1, 2, 4, 8], "b": [20, 40]}
    rows = [
        ("u1", topic, event_type, AS_OF - int(days * DAY), value)
        for topic, days in ages.items()
        for days in days
    ]
    columns = ["user_id", "topic", "event_type", "timestamp", "value"]
    return pd.DataFrame(rows, columns=columns)


def scores_by_topic(events: pd.DataFrame, bundle: Bundle) -> dict[str, float]:
    scores = score_events(events, bundle, as_of=AS_OF).scores
    return dict(zip(scores["topic"], scores["interest"].astype(float), strict=True))


def test_statistics_ignore_constant_columns() -> None:
    rows = np.array([[1.0, 0.0, 2.0], [1.0, 0.0, 4.0]], dtype=np.float32)
    mean, variance = normalization_statistics(rows)
    assert mean.tolist() == [1.0, 0.0, 3.0]
    assert variance[0] == IGNORED_FEATURE_VARIANCE
    assert variance[1] == IGNORED_FEATURE_VARIANCE
    assert variance[2] == pytest.approx(1.0)
    assert constant_features(rows).tolist() == [True, True, False]


def test_manifest_lists_constant_features(bundle: Bundle) -> None:
    constant = bundle.manifest["features"]["constant_in_training"]
    assert "mean_value" in constant
    assert set(constant) <= set(bundle.manifest["features"]["names"])


def test_value_column_does_not_saturate(bundle: Bundle) -> None:
    event_type = bundle.event_types[0]
    plain = scores_by_topic(two_topic_history(event_type, 1.0), bundle)
    rated = scores_by_topic(two_topic_history(event_type, 4.5), bundle)
    assert rated["a"] == pytest.approx(plain["a"], abs=1e-3)
    assert rated["a"] > rated["b"]


def test_unknown_event_type_still_scored(bundle: Bundle) -> None:
    scores = scores_by_topic(two_topic_history("podcast_listen", 1.0), bundle)
    assert scores["a"] > 0.05
    assert scores["a"] > scores["b"]
