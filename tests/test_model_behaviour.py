"""Behavioural tests of a trained bundle, scored through the whole local path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infer.bundle import Bundle, load_bundle
from infer.scorer import score_events, score_file
from train.simulate import DEFAULT_SAMPLE, load_simulated

DAY = 86_400
AS_OF = 1_718_000_000


@pytest.fixture(scope="module")
def bundle(trained_bundle: Path) -> Bundle:
    return load_bundle(trained_bundle, threads=1)


@pytest.fixture(scope="module")
def sample_events() -> pd.DataFrame:
    sample = replace(DEFAULT_SAMPLE, users=40, days=60, seed=23)
    return load_simulated(sample).events


def history(event_type: str, recent_days: list[float]) -> pd.DataFrame:
    """Events of one user: topic 'a' at the given ages, topic 'b' steady."""
    rows = [("u1", "a", event_type, AS_OF - int(days * DAY)) for days in recent_days]
    rows += [("u1", "b", event_type, AS_OF - int(days * DAY)) for days in (3, 9, 20)]
    events = pd.DataFrame(rows, columns=["user_id", "topic", "event_type", "timestamp"])
    events["value"] = 1.0
    return events


def interest_of(scores: pd.DataFrame, topic: str) -> float:
    return float(scores.loc[scores["topic"] == topic, "interest"].iloc[0])


def test_recent_activity_raises_score(bundle: Bundle) -> None:
    event_type = bundle.event_types[0]
    older = history(event_type, [40, 45, 50])
    newer = history(event_type, [0.5, 45, 50])
    old_score = interest_of(score_events(older, bundle, as_of=AS_OF).scores, "a")
    new_score = interest_of(score_events(newer, bundle, as_of=AS_OF).scores, "a")
    assert new_score > old_score


def test_more_recent_events_raise_score(bundle: Bundle) -> None:
    event_type = bundle.event_types[0]
    base = history(event_type, [10, 30])
    more = history(event_type, [1, 2, 10, 30])
    base_score = interest_of(score_events(base, bundle, as_of=AS_OF).scores, "a")
    more_score = interest_of(score_events(more, bundle, as_of=AS_OF).scores, "a")
    assert more_score > base_score


def test_row_order_does_not_change_scores(
    bundle: Bundle, sample_events: pd.DataFrame, tmp_path: Path
) -> None:
    ordered = tmp_path / "ordered.csv"
    shuffled = tmp_path / "shuffled.csv"
    sample_events.to_csv(ordered, index=False)
    permutation = np.random.default_rng(0).permutation(len(sample_events))
    sample_events.iloc[permutation].to_csv(shuffled, index=False)
    first = score_file(ordered, bundle).scores
    second = score_file(shuffled, bundle).scores
    assert first is not None and len(first) > 50
    pd.testing.assert_frame_equal(first, second)


def test_identical_files_identical_output(
    bundle: Bundle, sample_events: pd.DataFrame, tmp_path: Path
) -> None:
    copies = [tmp_path / "one.csv", tmp_path / "two.csv"]
    outputs = [tmp_path / "one.parquet", tmp_path / "two.parquet"]
    for path in copies:
        sample_events.to_csv(path, index=False)
    for path, out in zip(copies, outputs, strict=True):
        score_file(path, bundle, out=out)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
