"""Evaluation: NDCG@3, the bootstrap interval over users, slices."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from train.evaluate import bootstrap_mse_difference, metrics, ndcg_at_k


def test_ndcg_hand_computed() -> None:
    labels = np.array([0.5, 0.3, 0.2, 0.0])
    predictions = np.array([0.1, 0.9, 0.5, 0.4])
    groups = np.zeros(4, dtype=np.int64)
    dcg = 0.3 + 0.2 / math.log2(3)
    ideal = 0.5 + 0.3 / math.log2(3) + 0.2 / 2
    assert ndcg_at_k(predictions, labels, groups) == pytest.approx(dcg / ideal)


def test_ndcg_perfect_ranking_is_one() -> None:
    labels = np.array([0.1, 0.6, 0.3, 0.7, 0.3])
    groups = np.array([0, 0, 0, 1, 1])
    assert ndcg_at_k(labels * 2, labels, groups) == pytest.approx(1.0)


def test_ndcg_skips_groups_without_gain() -> None:
    labels = np.array([1.0, 0.0, 0.0, 0.0])
    predictions = np.array([0.9, 0.1, 0.8, 0.2])
    groups = np.array([0, 0, 1, 1])
    assert ndcg_at_k(predictions, labels, groups) == 1.0


def test_ndcg_only_top_three_count() -> None:
    labels = np.array([0.0, 0.0, 0.0, 1.0])
    predictions = np.array([0.9, 0.8, 0.7, 0.1])
    assert ndcg_at_k(predictions, labels, np.zeros(4, dtype=np.int64)) == 0.0


def test_metrics_mse_and_mae() -> None:
    result = metrics(np.array([0.0, 1.0]), np.array([0.5, 0.5]), np.array([0, 1]))
    assert result["mse"] == pytest.approx(0.25)
    assert result["mae"] == pytest.approx(0.5)


def test_bootstrap_interval_below_zero_when_better() -> None:
    rng = np.random.default_rng(0)
    labels = rng.uniform(size=2_000)
    users = pd.Series(rng.integers(0, 200, 2_000).astype(str))
    good = labels + rng.normal(0, 0.05, 2_000)
    poor = labels + rng.normal(0, 0.2, 2_000)
    low, high = bootstrap_mse_difference(good, poor, labels, users, samples=300, seed=1)
    assert low < high < 0


def test_bootstrap_interval_contains_estimate() -> None:
    rng = np.random.default_rng(3)
    labels = rng.uniform(size=1_000)
    users = pd.Series(rng.integers(0, 100, 1_000).astype(str))
    first = labels + rng.normal(0, 0.1, 1_000)
    second = labels + rng.normal(0, 0.1, 1_000)
    estimate = np.mean((first - labels) ** 2) - np.mean((second - labels) ** 2)
    low, high = bootstrap_mse_difference(
        first, second, labels, users, samples=300, seed=2
    )
    assert low <= estimate <= high


def test_bootstrap_repeatable_with_seed() -> None:
    labels = np.linspace(0, 1, 50)
    users = pd.Series(np.arange(50) % 7)
    first = bootstrap_mse_difference(
        labels * 0.9, labels, labels, users, samples=50, seed=4
    )
    second = bootstrap_mse_difference(
        labels * 0.9, labels, labels, users, samples=50, seed=4
    )
    assert first == second
