"""Scoring parity with the Keras model on real MovieLens events at a test cutoff.

A bundle is trained on MovieLens ml-latest-small with few epochs (the
parity check does not depend on model quality). The events up to one test
cutoff are written to a canonical CSV file and scored through the reader,
the feature builder and onnxruntime; every labelled test row of that
cutoff must get the interest that the Keras model predicts for it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from infer.bundle import load_bundle
from infer.scorer import score_file

if TYPE_CHECKING:
    from train.pipeline import TrainingRun

pytestmark = pytest.mark.slow
PARITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def movielens_run(
    movielens_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainingRun:
    from train.config import ModelSettings, defaults_for
    from train.movielens import load_movielens
    from train.pipeline import train_bundle

    settings = replace(
        defaults_for("movielens"),
        model=ModelSettings(max_epochs=3, patience=1, seed=5),
    )
    data = load_movielens(movielens_dir)
    out_dir = tmp_path_factory.mktemp("movielens_bundle")
    return train_bundle(data, settings, out_dir, verbose=0, progress=False)


def test_scores_match_keras_at_test_cutoff(
    movielens_run: TrainingRun, movielens_dir: Path, tmp_path: Path
) -> None:
    from train.labels import CUTOFF
    from train.model import predict
    from train.movielens import load_movielens

    test = movielens_run.splits["test"]
    cutoff = int(test.keys[CUTOFF].max())
    rows = test.select(test.keys[CUTOFF].to_numpy() == cutoff)
    keras_interest = predict(movielens_run.model, rows.features)

    events = load_movielens(movielens_dir).events
    history = events[events["timestamp"] <= cutoff]
    source = tmp_path / "movielens_history.csv"
    history.to_csv(source, index=False)
    bundle = load_bundle(movielens_run.bundle, threads=1)
    summary = score_file(source, bundle, out=None, as_of=cutoff)
    assert summary.scores is not None

    expected = pd.DataFrame(
        {
            "user_id": rows.keys["user_id"].astype(str).to_numpy(),
            "topic": rows.keys["topic"].astype(str).to_numpy(),
            "keras": keras_interest,
        }
    )
    scores = summary.scores.astype({"user_id": str, "topic": str})
    joined = expected.merge(scores, on=["user_id", "topic"], how="left")
    assert len(rows) > 100
    assert joined["interest"].notna().all()
    difference = np.abs(joined["interest"].to_numpy() - joined["keras"].to_numpy())
    assert difference.max() <= PARITY_TOLERANCE
