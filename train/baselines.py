"""Baselines the model must beat, evaluated on the same rows as the model.

- exponential decay: each history event counts ``2 ** (-age / half_life)``
  times its label weight, and the prediction is the topic's share of the
  user's decayed weight; the half-life is tuned on validation MSE;
- no decay: the topic's share of the user's events over the lookback;
- ridge regression on the model's features, standardised with the training
  rows' mean and standard deviation, with its penalty tuned on validation
  MSE and predictions clipped to [0, 1], the range of the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from infer.schema import SECONDS_PER_DAY, TIMESTAMP, TOPIC, USER_ID
from train.codes import shared_codes


def exp_decay_shares(
    history: pd.DataFrame,
    as_of: int,
    keys: pd.DataFrame,
    half_lives_days: Sequence[float],
    weights: np.ndarray,
) -> np.ndarray:
    """Return each candidate's share of its user's decayed weight per half-life.

    Parameters
    ----------
    history:
        The events in ``(T - L, T]``.
    as_of:
        The cutoff ``T`` in epoch seconds.
    keys:
        Candidates (``user_id``, ``topic``) to return shares for; each must
        have history events.
    half_lives_days:
        The half-lives, in days.
    weights:
        The label weight of each history event.

    Returns
    -------
    numpy.ndarray
        float32, [len(keys), len(half_lives_days)].
    """
    age_days = (as_of - history[TIMESTAMP].to_numpy(dtype=np.int64)) / SECONDS_PER_DAY
    halves = np.asarray(half_lives_days, dtype=np.float64)
    codes = shared_codes(history[USER_ID], history[TOPIC], keys[USER_ID], keys[TOPIC])
    shares = np.zeros((len(keys), len(halves)), dtype=np.float32)
    for column, half_life in enumerate(halves):
        decayed = weights * np.exp2(-age_days / half_life)
        pair_sum = np.bincount(
            codes.event_pairs, weights=decayed, minlength=codes.n_pairs
        )
        user_sum = np.bincount(
            codes.event_users, weights=decayed, minlength=codes.n_users
        )
        numerator = pair_sum[codes.key_pairs]
        denominator = user_sum[codes.key_users]
        shares[:, column] = _safe_divide(numerator, denominator)
    return shares


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    result = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def mse(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Return the mean squared error."""
    return float(np.mean((np.asarray(predictions, np.float64) - labels) ** 2))


@dataclass(frozen=True)
class ExpDecay:
    """The exponential-decay baseline with its tuned half-life."""

    half_life_days: float
    column: int
    validation_mse_by_half_life: dict[float, float]

    def predict(self, decay_shares: np.ndarray) -> np.ndarray:
        """Return the shares at the tuned half-life."""
        return decay_shares[:, self.column]


def tune_exp_decay(
    decay_shares: np.ndarray, labels: np.ndarray, half_lives_days: Sequence[float]
) -> ExpDecay:
    """Pick the half-life with the lowest MSE on the given (validation) rows."""
    scores = {
        float(h): mse(decay_shares[:, i], labels) for i, h in enumerate(half_lives_days)
    }
    best = min(
        range(len(half_lives_days)), key=lambda i: scores[float(half_lives_days[i])]
    )
    return ExpDecay(
        half_life_days=float(half_lives_days[best]),
        column=best,
        validation_mse_by_half_life=scores,
    )


@dataclass(frozen=True)
class Ridge:
    """Ridge regression on standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Return predictions clipped to [0, 1]."""
        standard = (features.astype(np.float64) - self.mean) / self.scale
        return np.clip(standard @ self.coef + self.intercept, 0.0, 1.0)


def fit_ridge(features: np.ndarray, labels: np.ndarray, alpha: float) -> Ridge:
    """Fit ridge regression in closed form: ``(X'X + alpha I) w = X'y``.

    Features with zero spread on the training rows get scale 1, so they
    stay at 0 after centring and take no weight.
    """
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    standard = (x - mean) / scale
    target = labels.astype(np.float64)
    intercept = float(target.mean())
    gram = standard.T @ standard + alpha * np.eye(standard.shape[1])
    coef = np.linalg.solve(gram, standard.T @ (target - intercept))
    return Ridge(mean=mean, scale=scale, coef=coef, intercept=intercept, alpha=alpha)


def tune_ridge(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    alphas: Sequence[float],
) -> Ridge:
    """Fit ridge at each penalty and keep the one with the lowest validation MSE."""
    fits = [fit_ridge(train_features, train_labels, float(a)) for a in alphas]
    scores = [mse(fit.predict(validation_features), validation_labels) for fit in fits]
    return fits[int(np.argmin(scores))]
