"""Fixtures that train a small model bundle once per test session.

The bundle is real: a Keras model trained on a small simulated sample,
exported to ONNX with the parity check, with its manifest and report. It
is small so that the whole session pays for one training run of a few
seconds, not for the default sample.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from train.config import BaselineSettings, ModelSettings, defaults_for
from train.simulate import DEFAULT_SAMPLE, load_simulated

if TYPE_CHECKING:
    from train.pipeline import TrainingRun

# 300 users over 120 days give 15 weekly cutoffs: enough for the three
# splits with their gaps, and a few tens of thousands of labelled rows.
SMALL_SAMPLE = replace(DEFAULT_SAMPLE, users=300, days=120, seed=11)
SMALL_SETTINGS = replace(
    defaults_for("simulated"),
    model=ModelSettings(max_epochs=5, patience=2, seed=3),
    baselines=BaselineSettings(bootstrap_samples=200),
)


@pytest.fixture(scope="session")
def training_run(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """Train a small bundle once; return the run (bundle path, model, splits)."""
    # Imported here so that test sessions without training tests do not
    # import TensorFlow.
    from train.pipeline import train_bundle

    out_dir = tmp_path_factory.mktemp("artifacts")
    data = load_simulated(SMALL_SAMPLE)
    return train_bundle(data, SMALL_SETTINGS, out_dir, verbose=0, progress=False)


@pytest.fixture(scope="session")
def trained_bundle(training_run: TrainingRun) -> Path:
    """Return the folder of a small trained bundle (model.onnx, manifest.json, ...)."""
    return training_run.bundle
