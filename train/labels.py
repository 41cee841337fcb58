"""Cutoffs, labels and the time split.

For a cutoff ``T`` the history is the user's events in ``(T - L, T]`` and
the candidates are the (user, topic) pairs with a history event. The label
of a candidate is the share of the user's event weight in ``(T, T + H]``
that falls on its topic; a candidate whose topic has no horizon event gets
0. Users without horizon events give no rows. Topics that appear only in
the horizon are not candidates, so the labels of one (user, cutoff) sum to
at most 1.

Cutoffs are a fixed stride apart and split by time into train, validation
and test. A cutoff whose label window ``(T, T + H]`` reaches past the first
cutoff of the next split is dropped, so no label window of one split sees
events that the next split's label windows see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from infer.features import FeatureConfig, build_features, feature_names
from infer.schema import (
    CATCH_ALL_EVENT_TYPE,
    EVENT_TYPE,
    SECONDS_PER_DAY,
    TIMESTAMP,
    TOPIC,
    USER_ID,
)
from train.baselines import exp_decay_shares
from train.codes import shared_codes
from train.config import DEFAULT_EVENT_WEIGHT, LabelSettings

CUTOFF = "cutoff"
SPLIT_NAMES = ("train", "validation", "test")


def make_cutoffs(start: int, end: int, settings: LabelSettings) -> np.ndarray:
    """Return the cutoffs, in epoch seconds, for events spanning ``[start, end]``.

    The first cutoff is one stride after midnight UTC of the day of
    ``start``; the last is the latest whose label window ``(T, T + H]``
    ends by ``end``, so every label window is fully observed.
    """
    stride = int(round(settings.stride_days * SECONDS_PER_DAY))
    horizon = int(round(settings.horizon_days * SECONDS_PER_DAY))
    first = (int(start) // SECONDS_PER_DAY) * SECONDS_PER_DAY + stride
    last = int(end) - horizon
    if last < first:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, stride, dtype=np.int64)


def split_cutoffs(
    cutoffs: np.ndarray, settings: LabelSettings
) -> dict[str, np.ndarray]:
    """Split sorted cutoffs by time into train, validation and test.

    The last ``test_fraction`` of the cutoffs go to test and the
    ``validation_fraction`` before them to validation, each at least one
    cutoff. Then each split loses its cutoffs whose label window ends after
    the first cutoff of the next split.

    Raises
    ------
    ValueError
        If a split ends up without cutoffs: the data spans too short a time
        for the lookback, horizon and stride.
    """
    n = len(cutoffs)
    n_test = max(1, int(round(n * settings.test_fraction)))
    n_validation = max(1, int(round(n * settings.validation_fraction)))
    n_train = n - n_test - n_validation
    parts = {
        "train": cutoffs[:n_train],
        "validation": cutoffs[n_train : n_train + n_validation],
        "test": cutoffs[n_train + n_validation :],
    }
    horizon = int(round(settings.horizon_days * SECONDS_PER_DAY))
    for name, following in (("train", "validation"), ("validation", "test")):
        if len(parts[following]):
            limit = parts[following][0]
            parts[name] = parts[name][parts[name] + horizon <= limit]
    empty = [name for name in SPLIT_NAMES if len(parts[name]) == 0]
    if empty:
        raise ValueError(
            f"the {', '.join(empty)} split has no cutoffs: {n} cutoffs "
            f"{settings.stride_days:g} days apart leave too few after the gaps of "
            f"{settings.horizon_days:g} days between splits; use data spanning a "
            f"longer time, or a shorter --horizon-days or --stride-days"
        )
    return parts


def event_type_vocabulary(events: pd.DataFrame, until: int) -> tuple[str, ...]:
    """Return the event types seen up to ``until``, most frequent first.

    The catch-all type ends the vocabulary; an event type already named
    like the catch-all is counted under it.
    """
    seen = events.loc[events[TIMESTAMP].to_numpy() <= until, EVENT_TYPE]
    counts = seen.astype(str).value_counts(sort=False)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    names = [name for name, _ in ranked if name != CATCH_ALL_EVENT_TYPE]
    return (*names, CATCH_ALL_EVENT_TYPE)


def event_weights(event_types: pd.Series, settings: LabelSettings) -> np.ndarray:
    """Return the label weight of each event, by its type."""
    explicit = settings.weight_of()
    if not explicit:
        return np.full(len(event_types), DEFAULT_EVENT_WEIGHT)
    mapped = event_types.astype(str).map(explicit)
    return mapped.fillna(DEFAULT_EVENT_WEIGHT).to_numpy(dtype=np.float64)


def horizon_labels(
    horizon: pd.DataFrame, keys: pd.DataFrame, settings: LabelSettings
) -> np.ndarray:
    """Return the label of each candidate in ``keys`` from the horizon events.

    ``horizon`` contains the events in ``(T, T + H]``. The result is aligned
    with ``keys``; it is NaN for candidates whose user has no horizon weight,
    because those rows carry no label.
    """
    weights = event_weights(horizon[EVENT_TYPE], settings)
    codes = shared_codes(horizon[USER_ID], horizon[TOPIC], keys[USER_ID], keys[TOPIC])
    pair_weight = np.bincount(
        codes.event_pairs, weights=weights, minlength=codes.n_pairs
    )
    user_weight = np.bincount(
        codes.event_users, weights=weights, minlength=codes.n_users
    )
    numerator = pair_weight[codes.key_pairs]
    denominator = user_weight[codes.key_users]
    labels = np.full(len(keys), np.nan)
    known = denominator > 0
    labels[known] = numerator[known] / denominator[known]
    return labels


@dataclass
class LabelledSet:
    """Labelled candidate rows over one or more cutoffs.

    ``keys`` has ``user_id``, ``topic`` and ``cutoff`` (epoch seconds);
    ``features`` (float32) and ``labels`` are aligned with it.
    ``decay_shares`` contains the exponential-decay share of each row for each
    half-life of ``half_lives_days``, the input of the decay baseline.
    """

    keys: pd.DataFrame
    features: np.ndarray
    labels: np.ndarray
    decay_shares: np.ndarray
    half_lives_days: tuple[float, ...]
    names: list[str]

    def __len__(self) -> int:
        return len(self.keys)

    def select(self, mask: np.ndarray) -> LabelledSet:
        """Return the rows where ``mask`` is true."""
        return LabelledSet(
            keys=self.keys[mask].reset_index(drop=True),
            features=self.features[mask],
            labels=self.labels[mask],
            decay_shares=self.decay_shares[mask],
            half_lives_days=self.half_lives_days,
            names=self.names,
        )

    def column(self, name: str) -> np.ndarray:
        """Return one feature column by name."""
        return self.features[:, self.names.index(name)]


def sort_by_time(events: pd.DataFrame) -> pd.DataFrame:
    """Return the events sorted by timestamp (stable), with a fresh index."""
    order = np.argsort(events[TIMESTAMP].to_numpy(dtype=np.int64), kind="stable")
    return events.iloc[order].reset_index(drop=True)


def build_dataset(
    events: pd.DataFrame,
    cutoffs: Sequence[int],
    feature_config: FeatureConfig,
    settings: LabelSettings,
    half_lives_days: Sequence[float],
    *,
    progress: bool = True,
) -> LabelledSet:
    """Build features, labels and decay shares at every cutoff.

    Parameters
    ----------
    events:
        Canonical events sorted by timestamp (see ``sort_by_time``).
    cutoffs:
        Reference times ``T`` in epoch seconds.
    feature_config:
        The feature builder's settings; its lookback is ``L``.
    settings:
        Horizon and event weights of the label.
    half_lives_days:
        Half-lives at which the exponential-decay baseline's shares are
        computed.
    progress:
        Show a progress bar over the cutoffs.

    Returns
    -------
    LabelledSet
        Only the candidates whose user has horizon events.
    """
    timestamps = events[TIMESTAMP].to_numpy(dtype=np.int64)
    lookback = int(round(feature_config.lookback_days * SECONDS_PER_DAY))
    horizon = int(round(settings.horizon_days * SECONDS_PER_DAY))
    half_lives = tuple(float(h) for h in half_lives_days)
    parts: list[LabelledSet] = []
    for cutoff in tqdm(
        list(cutoffs), desc="features over cutoffs", unit="cutoff", disable=not progress
    ):
        cutoff = int(cutoff)
        # Events are sorted, so the history (T - L, T] and the horizon
        # (T, T + H] are contiguous slices.
        lo, mid, hi = np.searchsorted(
            timestamps, [cutoff - lookback, cutoff, cutoff + horizon], side="right"
        )
        history = events.iloc[lo:mid]
        matrix = build_features(history, cutoff, feature_config)
        if len(matrix) == 0:
            continue
        labels = horizon_labels(events.iloc[mid:hi], matrix.keys, settings)
        keep = ~np.isnan(labels)
        if not keep.any():
            continue
        keys = matrix.keys[keep].reset_index(drop=True)
        weights = event_weights(history[EVENT_TYPE], settings)
        shares = exp_decay_shares(history, cutoff, keys, half_lives, weights)
        keys[CUTOFF] = np.int64(cutoff)
        parts.append(
            LabelledSet(
                keys=keys,
                features=matrix.values[keep],
                labels=labels[keep].astype(np.float32),
                decay_shares=shares,
                half_lives_days=half_lives,
                names=matrix.names,
            )
        )
    if not parts:
        return empty_set(feature_config, half_lives)
    return LabelledSet(
        keys=pd.concat([p.keys for p in parts], ignore_index=True),
        features=np.concatenate([p.features for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        decay_shares=np.concatenate([p.decay_shares for p in parts]),
        half_lives_days=half_lives,
        names=parts[0].names,
    )


def empty_set(
    feature_config: FeatureConfig, half_lives: tuple[float, ...]
) -> LabelledSet:
    """Return a labelled set with no rows."""
    names = feature_names(feature_config)
    return LabelledSet(
        keys=pd.DataFrame(
            {
                USER_ID: pd.Series([], dtype=object),
                TOPIC: pd.Series([], dtype=object),
                CUTOFF: pd.Series([], dtype=np.int64),
            }
        ),
        features=np.zeros((0, len(names)), dtype=np.float32),
        labels=np.zeros(0, dtype=np.float32),
        decay_shares=np.zeros((0, len(half_lives)), dtype=np.float32),
        half_lives_days=half_lives,
        names=names,
    )
