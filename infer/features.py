"""The one feature builder, shared by training and scoring.

For a reference time ``T`` (``as_of``, epoch seconds) the history is every
event with ``T - L < timestamp <= T``, where ``L`` is the lookback in days.
Each (user, topic) pair with at least one history event is a candidate and
gets one row of features. No feature reads an event after ``T``.

Everything is computed with integer codes and ``numpy.bincount`` over the
whole frame, so the cost is a few passes over the events, whatever the
number of users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from infer.errors import InputContractError
from infer.schema import (
    CATCH_ALL_EVENT_TYPE,
    EVENT_TYPE,
    SECONDS_PER_DAY,
    TIMESTAMP,
    TOPIC,
    USER_ID,
    VALUE,
)


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the feature builder; stored in the bundle's manifest.

    ``event_types`` is the vocabulary with the catch-all type last. Windows
    longer than the lookback are dropped, because no history event is older
    than the lookback.
    """

    event_types: tuple[str, ...]
    lookback_days: float = 365.0
    windows_days: tuple[float, ...] = (1.0, 7.0, 30.0, 90.0, 365.0)
    half_lives_days: tuple[float, ...] = (1.0, 7.0, 30.0, 90.0)

    def __post_init__(self) -> None:
        if not self.event_types or self.event_types[-1] != CATCH_ALL_EVENT_TYPE:
            raise ValueError(
                f"event_types must end with the catch-all type "
                f"{CATCH_ALL_EVENT_TYPE!r}, got {list(self.event_types)!r}"
            )
        if len(set(self.event_types)) != len(self.event_types):
            raise ValueError(f"event_types has duplicates: {list(self.event_types)!r}")
        if not self.lookback_days > 0:
            raise ValueError(f"lookback_days must be > 0, got {self.lookback_days!r}")
        if any(not h > 0 for h in self.half_lives_days):
            raise ValueError(
                f"half_lives_days must be > 0, got {self.half_lives_days!r}"
            )

    @property
    def active_windows(self) -> tuple[float, ...]:
        """Windows no longer than the lookback, in days."""
        return tuple(w for w in self.windows_days if w <= self.lookback_days)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain JSON types."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """Build a config from the dict that ``to_dict`` wrote."""
        return cls(
            event_types=tuple(data["event_types"]),
            lookback_days=float(data["lookback_days"]),
            windows_days=tuple(float(w) for w in data["windows_days"]),
            half_lives_days=tuple(float(h) for h in data["half_lives_days"]),
        )


def _fmt(days: float) -> str:
    return f"{days:g}d"


def feature_names(config: FeatureConfig) -> list[str]:
    """Return the ordered feature names that ``build_features`` produces."""
    names: list[str] = []
    for event_type in config.event_types:
        names += [f"log_count_{event_type}_{_fmt(w)}" for w in config.active_windows]
    names += [f"days_since_last_{event_type}" for event_type in config.event_types]
    names += ["days_since_last_any", "days_since_first_any"]
    for event_type in config.event_types:
        names += [f"log_decayed_{event_type}_{_fmt(h)}" for h in config.half_lives_days]
    names += [f"share_decayed_{_fmt(h)}" for h in config.half_lives_days]
    names += [
        "share_count_lookback",
        "log_user_events_lookback",
        "user_active_topics",
        "mean_value",
    ]
    return names


@dataclass
class FeatureMatrix:
    """Features of the candidate pairs at one reference time.

    ``keys`` has columns ``user_id`` and ``topic``, one row per candidate,
    aligned with the rows of ``values`` (float32, [n_candidates,
    n_features]). ``unseen_event_types`` counts the history events whose
    type is outside the vocabulary and was scored as the catch-all type.
    """

    keys: pd.DataFrame
    values: np.ndarray
    as_of: int
    names: list[str]
    unseen_event_types: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)


def _codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Return integer codes and the uniques, sorted by value.

    Sorting the uniques by value (not by first appearance, nor by a
    categorical's category order) makes the candidate order independent of
    the row order of the input.
    """
    codes, uniques = pd.factorize(column, sort=False)
    values = pd.Index(np.asarray(uniques, dtype=object))
    order = np.argsort(values.to_numpy(), kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return position[codes], values[order]


def event_type_codes(
    event_types: pd.Series, vocabulary: Sequence[str]
) -> tuple[np.ndarray, dict[str, int]]:
    """Map event types to vocabulary positions; unknown types go to the last one.

    Returns the codes and the count of events per type outside the
    vocabulary. Missing event types count as the catch-all type.
    """
    catch_all = len(vocabulary) - 1
    codes, uniques = pd.factorize(event_types, sort=False)
    known = pd.Index(list(vocabulary[:-1]))
    # Look up the few distinct types, not every row; the extra last entry
    # maps factorize's -1 (a missing value) to the catch-all type.
    lookup = known.get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
    lookup = np.append(lookup, -1).astype(np.int64)
    unknown = lookup < 0
    lookup[unknown] = catch_all
    unseen: dict[str, int] = {}
    if unknown[:-1].any():
        per_unique = np.bincount(codes[codes >= 0], minlength=len(uniques))
        unseen = {
            str(uniques[i]): int(per_unique[i])
            for i in np.flatnonzero(unknown[:-1])
            if uniques[i] != CATCH_ALL_EVENT_TYPE and per_unique[i] > 0
        }
    return lookup[codes], unseen


def select_history(
    events: pd.DataFrame, as_of: int, lookback_days: float
) -> pd.DataFrame:
    """Return the events with ``as_of - lookback < timestamp <= as_of``."""
    ts = events[TIMESTAMP].to_numpy(dtype=np.int64)
    start = as_of - lookback_days * SECONDS_PER_DAY
    inside = (ts > start) & (ts <= as_of)
    if inside.all():
        # Scoring files usually hold only history; skip the copy then.
        return events
    return events[inside]


def build_features(
    events: pd.DataFrame, as_of: int, config: FeatureConfig
) -> FeatureMatrix:
    """Build one feature row per candidate (user, topic) pair at ``as_of``.

    Parameters
    ----------
    events:
        A canonical event frame (see ``infer.schema``). Events after
        ``as_of`` or older than the lookback are ignored.
    as_of:
        The reference time ``T`` in epoch seconds.
    config:
        Windows, half-lives, lookback and event-type vocabulary.

    Returns
    -------
    FeatureMatrix
        Keys and float32 values; empty (0 rows) when no event falls in the
        history.

    Raises
    ------
    InputContractError
        If a required column is missing.
    """
    missing = [
        c for c in (USER_ID, TOPIC, EVENT_TYPE, TIMESTAMP) if c not in events.columns
    ]
    if missing:
        raise InputContractError(
            f"cannot build features: event frame is missing columns {missing}; "
            f"expected at least user_id, topic, event_type, timestamp"
        )
    as_of = int(as_of)
    names = feature_names(config)
    history = select_history(events, as_of, config.lookback_days)
    if history.empty:
        return FeatureMatrix(
            keys=pd.DataFrame(
                {
                    USER_ID: pd.Series([], dtype=object),
                    TOPIC: pd.Series([], dtype=object),
                }
            ),
            values=np.zeros((0, len(names)), dtype=np.float32),
            as_of=as_of,
            names=names,
        )

    user_codes, users = _codes(history[USER_ID])
    topic_codes, topics = _codes(history[TOPIC])
    pair_codes, pair_uniques = pd.factorize(
        user_codes * len(topics) + topic_codes, sort=True
    )
    pair_codes = pair_codes.astype(np.int64, copy=False)
    n_pairs = len(pair_uniques)
    pair_user = (pair_uniques // len(topics)).astype(np.int64)
    pair_topic = (pair_uniques % len(topics)).astype(np.int64)
    n_users = len(users)

    type_codes, unseen = event_type_codes(history[EVENT_TYPE], config.event_types)
    n_types = len(config.event_types)
    timestamps = history[TIMESTAMP].to_numpy(dtype=np.int64)
    age_days = (as_of - timestamps) / SECONDS_PER_DAY
    lookback = float(config.lookback_days)
    pair_type = pair_codes * n_types + type_codes
    size = n_pairs * n_types

    # Columns are filled in place, so no list of float64 columns is kept.
    out = np.empty((n_pairs, len(names)), dtype=np.float32)
    column = 0

    def put(values: np.ndarray) -> None:
        nonlocal column
        out[:, column] = values
        column += 1

    # Counts per event type over each window, log-scaled. The integer
    # bincount of the events inside a window is faster than a weighted one.
    window_counts = {
        w: np.bincount(pair_type[age_days < w], minlength=size).reshape(
            n_pairs, n_types
        )
        for w in config.active_windows
    }
    for t in range(n_types):
        for w in config.active_windows:
            put(np.log1p(window_counts[w][:, t]))
    del window_counts

    # Recency per event type; the lookback stands for "never in the history".
    last_flat = np.full(size, lookback)
    np.minimum.at(last_flat, pair_type, age_days)
    last_by_type = last_flat.reshape(n_pairs, n_types)
    for t in range(n_types):
        put(last_by_type[:, t])
    put(last_by_type.min(axis=1))
    first_any = np.zeros(n_pairs)
    np.maximum.at(first_any, pair_codes, age_days)
    put(first_any)

    # Exponentially decayed activity per event type, and the pair's share of
    # the user's decayed activity over all types.
    decayed_total = {}
    decayed_by_type = {}
    for h in config.half_lives_days:
        weights = np.exp2(age_days * (-1.0 / h))
        flat = np.bincount(pair_type, weights=weights, minlength=size)
        decayed_by_type[h] = flat.reshape(n_pairs, n_types)
        decayed_total[h] = decayed_by_type[h].sum(axis=1)
    for t in range(n_types):
        for h in config.half_lives_days:
            put(np.log1p(decayed_by_type[h][:, t]))
    for h in config.half_lives_days:
        user_total = np.bincount(pair_user, weights=decayed_total[h], minlength=n_users)
        put(_safe_divide(decayed_total[h], user_total[pair_user]))

    # No-decay share, user activity level, breadth and mean value.
    pair_count = np.bincount(pair_codes, minlength=n_pairs).astype(np.float64)
    user_count = np.bincount(pair_user, weights=pair_count, minlength=n_users)
    user_topics = np.bincount(pair_user, minlength=n_users).astype(np.float64)
    value_sum: np.ndarray = pair_count
    if VALUE in history.columns:
        values = history[VALUE].to_numpy(dtype=np.float64)
        value_sum = np.bincount(pair_codes, weights=values, minlength=n_pairs)
    put(pair_count / user_count[pair_user])
    put(np.log1p(user_count[pair_user]))
    put(user_topics[pair_user])
    put(value_sum / pair_count)
    if column != len(names):
        raise RuntimeError(f"built {column} feature columns, names list {len(names)}")

    keys = pd.DataFrame(
        {
            USER_ID: pd.Categorical.from_codes(pair_user, categories=users),
            TOPIC: pd.Categorical.from_codes(pair_topic, categories=topics),
        }
    )
    return FeatureMatrix(
        keys=keys,
        values=out,
        as_of=as_of,
        names=names,
        unseen_event_types=unseen,
    )


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
