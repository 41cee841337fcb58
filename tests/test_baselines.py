"""Baselines: decay shares, half-life tuning and ridge regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infer.features import FeatureConfig, build_features
from infer.schema import SECONDS_PER_DAY
from train.baselines import exp_decay_shares, fit_ridge, tune_exp_decay, tune_ridge

DAY = SECONDS_PER_DAY
T = 50 * DAY
HISTORY = pd.DataFrame(
    {
        "user_id": ["u", "u", "u", "v"],
        "topic": ["a", "a", "b", "a"],
        "event_type": ["view", "view", "like", "view"],
        "timestamp": [T, T - 2 * DAY, T - 1 * DAY, T - 4 * DAY],
        "value": [1.0, 1.0, 1.0, 1.0],
    }
)
KEYS = pd.DataFrame({"user_id": ["u", "u", "v"], "topic": ["a", "b", "a"]})


def test_decay_share_hand_computed() -> None:
    shares = exp_decay_shares(HISTORY, T, KEYS, (1.0,), np.ones(4))
    a, b = 1 + 0.25, 0.5
    assert shares[0, 0] == pytest.approx(a / (a + b))
    assert shares[1, 0] == pytest.approx(b / (a + b))


def test_decay_share_single_topic_user_is_one() -> None:
    shares = exp_decay_shares(HISTORY, T, KEYS, (1.0, 30.0), np.ones(4))
    np.testing.assert_allclose(shares[2], [1.0, 1.0])


def test_decay_share_uses_event_weights() -> None:
    weights = np.array([1.0, 1.0, 4.0, 1.0])
    shares = exp_decay_shares(HISTORY, T, KEYS, (1.0,), weights)
    assert shares[1, 0] == pytest.approx(2.0 / (1.25 + 2.0))


def test_decay_share_matches_feature_builder() -> None:
    config = FeatureConfig(
        event_types=("view", "like", "other"),
        lookback_days=30.0,
        half_lives_days=(1.0, 7.0),
    )
    matrix = build_features(HISTORY, T, config)
    shares = exp_decay_shares(HISTORY, T, matrix.keys, (1.0, 7.0), np.ones(4))
    for i, name in enumerate(("share_decayed_1d", "share_decayed_7d")):
        column = matrix.values[:, matrix.names.index(name)]
        np.testing.assert_allclose(shares[:, i], column, rtol=1e-6)


def test_tune_picks_lowest_validation_mse() -> None:
    rng = np.random.default_rng(0)
    shares = rng.uniform(size=(500, 3)).astype(np.float32)
    labels = shares[:, 1] + rng.normal(0, 0.01, 500)
    tuned = tune_exp_decay(shares, labels, (1.0, 7.0, 30.0))
    assert tuned.half_life_days == 7.0
    np.testing.assert_array_equal(tuned.predict(shares), shares[:, 1])


def test_ridge_recovers_linear_target() -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2_000, 4))
    labels = 0.5 + 0.1 * features[:, 0] - 0.05 * features[:, 2]
    ridge = fit_ridge(features, labels, alpha=1e-6)
    clipped = np.clip(labels, 0, 1)
    np.testing.assert_allclose(ridge.predict(features), clipped, atol=1e-6)


def test_ridge_predictions_clipped() -> None:
    features = np.arange(10, dtype=np.float64)[:, None]
    ridge = fit_ridge(features, features[:, 0] / 3.0, alpha=1e-6)
    predictions = ridge.predict(features)
    assert predictions.min() >= 0.0
    assert predictions.max() <= 1.0


def test_ridge_constant_feature_ignored() -> None:
    features = np.c_[np.arange(20.0), np.full(20, 7.0)]
    ridge = fit_ridge(features, np.linspace(0, 1, 20), alpha=1.0)
    assert ridge.coef[1] == 0.0


def test_ridge_alpha_tuned_on_validation() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(60, 30))
    labels = 0.5 + 0.05 * features[:, 0] + rng.normal(0, 0.05, 60)
    valid = rng.normal(size=(500, 30))
    valid_labels = 0.5 + 0.05 * valid[:, 0]
    ridge = tune_ridge(features, labels, valid, valid_labels, (1e-6, 30.0))
    # Thirty noisy features on sixty rows overfit without a penalty.
    assert ridge.alpha == 30.0
