"""Metrics of the model and the baselines on the same rows.

- MSE (primary) and MAE over the candidate rows;
- NDCG@3 of the topics ranked by prediction within each (user, cutoff),
  with the label as gain, averaged over the groups whose labels are not
  all 0;
- a bootstrap 95 % interval of the model's MSE minus a baseline's,
  resampling users (all their rows at every cutoff move together, because
  one user's rows are not independent);
- the same metrics on slices: light and heavy users, and topics first seen
  in the last 30 days.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from infer.schema import USER_ID
from train.labels import CUTOFF, LabelledSet

NDCG_K = 3
NEW_TOPIC_DAYS = 30.0


def ndcg_at_k(
    predictions: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = NDCG_K
) -> float:
    """Return the mean NDCG@k over groups, with the label as gain.

    Rows are ranked by prediction within their group; ties keep row order.
    Groups whose labels are all 0 have no ideal ranking and are left out.
    Returns NaN when no group is left.
    """
    if len(labels) == 0:
        return float("nan")
    labels = np.asarray(labels, dtype=np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))

    def dcg(order_key: np.ndarray) -> np.ndarray:
        # Sort by group, then by descending key; a stable sort keeps row
        # order among ties.
        order = np.lexsort((-order_key, groups))
        sorted_groups = groups[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
        rank = np.arange(len(order)) - np.repeat(
            starts, np.diff(np.r_[starts, len(order)])
        )
        top = rank < k
        gains = labels[order][top] * discount[rank[top]]
        return np.bincount(
            sorted_groups[top], weights=gains, minlength=groups.max() + 1
        )

    actual = dcg(np.asarray(predictions, dtype=np.float64))
    ideal = dcg(labels)
    valid = ideal > 0
    if not valid.any():
        return float("nan")
    return float(np.mean(actual[valid] / ideal[valid]))


def group_codes(keys: pd.DataFrame) -> np.ndarray:
    """Return one integer code per (user, cutoff) group."""
    codes, _ = pd.factorize(pd.MultiIndex.from_arrays([keys[USER_ID], keys[CUTOFF]]))
    return codes.astype(np.int64)


def metrics(
    predictions: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> dict[str, float]:
    """Return MSE, MAE and NDCG@3 of one set of predictions."""
    error = np.asarray(predictions, dtype=np.float64) - labels
    if len(error) == 0:
        return {"mse": float("nan"), "mae": float("nan"), "ndcg_at_3": float("nan")}
    return {
        "mse": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
        "ndcg_at_3": ndcg_at_k(predictions, labels, groups),
    }


def evaluate_all(
    predictions: Mapping[str, np.ndarray], rows: LabelledSet
) -> dict[str, dict[str, float]]:
    """Return the metrics of every named prediction on the same rows."""
    groups = group_codes(rows.keys)
    return {
        name: metrics(values, rows.labels, groups)
        for name, values in predictions.items()
    }


def bootstrap_mse_difference(
    first: np.ndarray,
    second: np.ndarray,
    labels: np.ndarray,
    users: pd.Series,
    *,
    samples: int,
    seed: int,
) -> tuple[float, float]:
    """Return the 95 % bootstrap interval of MSE(first) - MSE(second).

    Users are drawn with replacement, and every row of a drawn user counts
    once per draw. Memory stays bounded: replicates are drawn in chunks.
    """
    labels = np.asarray(labels, dtype=np.float64)
    delta = (np.asarray(first, np.float64) - labels) ** 2 - (
        np.asarray(second, np.float64) - labels
    ) ** 2
    codes, uniques = pd.factorize(users)
    n_users = len(uniques)
    user_sum = np.bincount(codes, weights=delta, minlength=n_users)
    user_rows = np.bincount(codes, minlength=n_users).astype(np.float64)
    rng = np.random.default_rng(seed)
    chunk = max(1, 5_000_000 // max(n_users, 1))
    estimates: list[np.ndarray] = []
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        drawn = rng.integers(0, n_users, size=(size, n_users))
        estimates.append(user_sum[drawn].sum(axis=1) / user_rows[drawn].sum(axis=1))
    values = np.concatenate(estimates)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def slice_masks(rows: LabelledSet, heavy_threshold: float) -> dict[str, np.ndarray]:
    """Return the row masks of the evaluation slices.

    ``heavy_threshold`` is a number of lookback events: users above it are
    heavy, the others light. Topics are new when the user's first event on
    them is at most 30 days before the cutoff.
    """
    user_events = lookback_events(rows)
    first_seen = rows.column("days_since_first_any")
    return {
        "light_users": user_events <= heavy_threshold,
        "heavy_users": user_events > heavy_threshold,
        "new_topics_30d": first_seen <= NEW_TOPIC_DAYS,
    }


def lookback_events(rows: LabelledSet) -> np.ndarray:
    """Return the user's number of events in the lookback, for each row."""
    # The feature is log1p(count) in float32; rounding undoes the float error.
    return np.round(
        np.expm1(rows.column("log_user_events_lookback").astype(np.float64))
    )


def heavy_user_threshold(rows: LabelledSet) -> float:
    """Return the median lookback event count over the (user, cutoff) groups."""
    user_events = lookback_events(rows)
    per_group = pd.Series(user_events).groupby(group_codes(rows.keys)).first()
    return float(per_group.median()) if len(per_group) else 0.0


def evaluate_slices(
    predictions: Mapping[str, np.ndarray], rows: LabelledSet, heavy_threshold: float
) -> dict[str, dict[str, object]]:
    """Return the metrics of every prediction on every slice, with row counts."""
    result: dict[str, dict[str, object]] = {}
    for name, mask in slice_masks(rows, heavy_threshold).items():
        subset = rows.select(mask)
        entry: dict[str, object] = {"rows": int(mask.sum())}
        entry.update(evaluate_all({k: v[mask] for k, v in predictions.items()}, subset))
        result[name] = entry
    return result
