"""Score canonical events with a loaded bundle.

``score_events`` builds the features of every candidate (user, topic) pair
at ``as_of`` with the shared feature builder, runs the ONNX model, and
returns one row per pair with its rank within the user. It works through
the users in chunks of about ``CHUNK_EVENTS`` events, so the feature
builder's arrays are sized by the chunk, not by the file. Features of a
pair depend only on its user's events, so the scores equal those of one
pass. ``score_file`` chains reader, scorer and writer for one file and
returns the summary the CLI prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from infer.bundle import Bundle
from infer.errors import InputContractError
from infer.features import build_features
from infer.output import write_scores
from infer.reader import read_events
from infer.schema import OUTPUT_COLUMNS, SECONDS_PER_DAY, TIMESTAMP, TOPIC, USER_ID

# Events per chunk of users. The feature builder's temporary arrays (codes,
# ages, weights) took about 85 bytes per event on a simulated file, so a
# chunk needs about 45 MB whatever the file size. On a 10 M-event file,
# 1 M-event chunks were slower and 256 K-event chunks no faster.
CHUNK_EVENTS = 1 << 19
# Rows per pass when counting events per user, to bound the temporary
# integer array that numpy.bincount makes.
_COUNT_ROWS = 1 << 20


@dataclass
class ScoreStats:
    """Counts and timings of one scoring run.

    ``seconds`` has one entry per phase: ``read``, ``features``,
    ``inference`` and ``write`` (the phases that did not run are absent).
    ``unseen_event_types`` counts history events per event type outside
    the bundle's vocabulary, which were scored as the catch-all type.
    ``ignored_before_lookback`` counts the events at or before ``as_of``
    minus the bundle's lookback, and ``ignored_after_as_of`` the events
    after ``as_of``; the feature builder leaves both out.
    """

    rows: int = 0
    users: int = 0
    candidates: int = 0
    ignored_before_lookback: int = 0
    ignored_after_as_of: int = 0
    as_of: int | None = None
    unseen_event_types: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ScoreResult:
    """Scores in ``OUTPUT_COLUMNS`` order, sorted by user and rank, with stats."""

    scores: pd.DataFrame
    stats: ScoreStats


def score_events(
    events: pd.DataFrame,
    bundle: Bundle,
    *,
    as_of: int | None = None,
    top_k: int | None = None,
    chunk_events: int = CHUNK_EVENTS,
) -> ScoreResult:
    """Score every candidate (user, topic) pair of an event frame.

    Parameters
    ----------
    events:
        A canonical event frame (see ``infer.schema``), for example
        ``read_events(...).events``.
    bundle:
        The loaded model bundle.
    as_of:
        Reference time in epoch seconds; default: the latest event time.
    top_k:
        Keep only the ``top_k`` highest-ranked topics of each user.
    chunk_events:
        Target number of events per chunk of users; a user's events are
        never split, so a chunk can be larger.

    Returns
    -------
    ScoreResult
        ``scores`` with columns ``user_id``, ``topic``, ``interest``
        (float32, 0 to 1), ``rank`` (1 = strongest within the user; ties go
        to the topic that sorts first), ``as_of`` (epoch seconds) and
        ``model_version``, sorted by user and rank.

    Raises
    ------
    InputContractError
        If ``events`` is empty and no ``as_of`` is given.
    ValueError
        If ``top_k`` or ``chunk_events`` is less than 1.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
    if as_of is None:
        if events.empty:
            raise InputContractError(
                "cannot score: the event frame is empty and no as_of was given; "
                "pass events, or an as_of time"
            )
        as_of = int(events[TIMESTAMP].max())
    stats = ScoreStats(rows=len(events), as_of=int(as_of))
    stats.seconds = {"features": 0.0, "inference": 0.0}
    stats.ignored_before_lookback, stats.ignored_after_as_of = _count_outside_history(
        events[TIMESTAMP], int(as_of), bundle.feature_config.lookback_days
    )

    parts: list[tuple[pd.DataFrame, np.ndarray]] = []
    for chunk in _user_chunks(events, chunk_events):
        started = time.perf_counter()
        features = build_features(chunk, int(as_of), bundle.feature_config)
        stats.seconds["features"] += time.perf_counter() - started
        for event_type, count in features.unseen_event_types.items():
            stats.unseen_event_types[event_type] = (
                stats.unseen_event_types.get(event_type, 0) + count
            )

        started = time.perf_counter()
        interest = bundle.predict(features.values)
        stats.seconds["inference"] += time.perf_counter() - started
        parts.append((features.keys, interest))
        del features

    keys, interest = _combine(parts)
    scores = _rank(keys, interest, int(as_of), bundle.model_version, top_k)
    stats.candidates = len(keys)
    stats.users = int(keys[USER_ID].nunique()) if len(keys) else 0
    return ScoreResult(scores=scores, stats=stats)


def _count_outside_history(
    timestamps: pd.Series, as_of: int, lookback_days: float
) -> tuple[int, int]:
    """Return the numbers of events before the lookback and after ``as_of``.

    The bounds are those of ``infer.features.select_history``. The counts
    are taken ``_COUNT_ROWS`` rows at a time to bound the temporary masks.
    """
    values = timestamps.to_numpy()
    start = as_of - lookback_days * SECONDS_PER_DAY
    before = after = 0
    for offset in range(0, len(values), _COUNT_ROWS):
        part = values[offset : offset + _COUNT_ROWS]
        before += int(np.count_nonzero(part <= start))
        after += int(np.count_nonzero(part > as_of))
    return before, after


def _user_chunks(events: pd.DataFrame, chunk_events: int) -> Iterator[pd.DataFrame]:
    """Yield the events of consecutive groups of users, in file order within each.

    Users are grouped in the order of their codes (first appearance for a
    column read by ``read_events``) until a group has ``chunk_events``
    events. A file sorted by user gives slices without a copy; otherwise
    each chunk's rows are taken. Events without a user go to the first
    chunk.
    """
    if len(events) <= chunk_events:
        yield events
        return
    codes, n_users = _user_codes(events[USER_ID])
    counts = np.zeros(n_users + 1, dtype=np.int64)
    for start in range(0, len(codes), _COUNT_ROWS):
        # Shift by one so that the code -1 (no user) counts in bin 0.
        shifted = codes[start : start + _COUNT_ROWS].astype(np.int64) + 1
        counts += np.bincount(shifted, minlength=n_users + 1)
    per_user = counts[1:]
    chunk_of_user = (np.cumsum(per_user) - per_user) // chunk_events
    n_chunks = int(chunk_of_user.max()) + 1 if n_users else 1
    # The extra last entry sends the code -1 to chunk 0.
    lookup = np.append(chunk_of_user, 0).astype(np.min_scalar_type(n_chunks))
    chunk_of_event = lookup[codes]
    del codes
    if (chunk_of_event[1:] >= chunk_of_event[:-1]).all():
        sizes = np.bincount(chunk_of_user, weights=per_user, minlength=n_chunks)
        sizes[0] += counts[0]
        bounds = np.concatenate([[0], np.cumsum(sizes).astype(np.int64)])
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            if stop > start:
                yield events.iloc[start:stop]
        return
    for chunk in range(n_chunks):
        rows = np.flatnonzero(chunk_of_event == chunk)
        if len(rows):
            yield events.take(rows)


def _user_codes(users: pd.Series) -> tuple[np.ndarray, int]:
    """Return a code per event (-1 for a missing user) and the number of codes."""
    if isinstance(users.dtype, pd.CategoricalDtype):
        return users.cat.codes.to_numpy(), len(users.cat.categories)
    codes, uniques = pd.factorize(users)
    return codes, len(uniques)


def _combine(
    parts: list[tuple[pd.DataFrame, np.ndarray]],
) -> tuple[pd.DataFrame, np.ndarray]:
    """Join the keys and interest of chunks of disjoint users into one set.

    The joined keys have categories sorted by value, as ``build_features``
    makes them, so ranking gives the same order as one pass over all events.
    """
    filled = [(keys, interest) for keys, interest in parts if len(keys)]
    if len(filled) <= 1:
        return filled[0] if filled else parts[0]
    # Categories are built as build_features builds them: an Index of the
    # object array (pandas infers its dtype), sorted by value.
    users = pd.Index(np.concatenate([_categories(keys[USER_ID]) for keys, _ in filled]))
    user_order = np.argsort(users.to_numpy(), kind="stable")
    user_position = np.empty(len(users), dtype=np.int64)
    user_position[user_order] = np.arange(len(users))
    topics = pd.Index(
        np.unique(np.concatenate([_categories(keys[TOPIC]) for keys, _ in filled]))
    )
    user_codes, topic_codes = [], []
    offset = 0
    for keys, _ in filled:
        local = keys[USER_ID].cat.codes.to_numpy().astype(np.int64)
        user_codes.append(user_position[local + offset])
        offset += len(keys[USER_ID].cat.categories)
        topic_lookup = topics.get_indexer(keys[TOPIC].cat.categories)
        topic_codes.append(topic_lookup[keys[TOPIC].cat.codes.to_numpy()])
    keys = pd.DataFrame(
        {
            USER_ID: pd.Categorical.from_codes(
                np.concatenate(user_codes), categories=users[user_order]
            ),
            TOPIC: pd.Categorical.from_codes(
                np.concatenate(topic_codes), categories=topics
            ),
        }
    )
    return keys, np.concatenate([interest for _, interest in filled])


def _categories(column: pd.Series) -> np.ndarray:
    """Return the categories of a categorical column as an object array."""
    return np.asarray(column.cat.categories, dtype=object)


def _rank(
    keys: pd.DataFrame,
    interest: np.ndarray,
    as_of: int,
    model_version: str,
    top_k: int | None,
) -> pd.DataFrame:
    """Sort pairs by user, then interest (highest first), then topic, and rank them.

    Sorting on codes of sorted categories makes the output order independent
    of the row order of the input.
    """
    # NOTE: the feature builder sums float64 weights in input order, so a
    # reordered file can in principle change a feature in its last bits; a
    # test on a simulated sample found identical float32 scores.
    user_codes, users = pd.factorize(keys[USER_ID], sort=True)
    topic_codes, topics = pd.factorize(keys[TOPIC], sort=True)
    order = np.lexsort((topic_codes, -interest, user_codes))
    user_sorted = user_codes[order]
    n = len(order)
    group_start = np.ones(n, dtype=bool)
    group_start[1:] = user_sorted[1:] != user_sorted[:-1]
    starts = np.flatnonzero(group_start)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n))) + 1
    if top_k is not None:
        keep = rank <= top_k
        order, rank, user_sorted = order[keep], rank[keep], user_sorted[keep]
    scores = pd.DataFrame(
        {
            USER_ID: pd.Categorical.from_codes(user_sorted, categories=users),
            TOPIC: pd.Categorical.from_codes(topic_codes[order], categories=topics),
            "interest": interest[order].astype(np.float32),
            "rank": rank.astype(np.int32),
            "as_of": np.full(len(order), as_of, dtype=np.int64),
            "model_version": pd.Categorical.from_codes(
                np.zeros(len(order), dtype=np.int8), categories=[model_version]
            ),
        }
    )
    return scores[list(OUTPUT_COLUMNS)]


@dataclass
class FileSummary:
    """The outcome of scoring one input file; the CLI prints one line of it.

    ``outcome`` is ``"ok"`` or ``"failed"``; ``error`` has the message of a
    failure. ``scores`` is set only when ``score_file`` was called without
    an output destination.
    """

    source: str
    outcome: str = "ok"
    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    users: int = 0
    candidates: int = 0
    ignored_before_lookback: int = 0
    ignored_after_as_of: int = 0
    unseen_event_types: dict[str, int] = field(default_factory=dict)
    timestamp_unit: str | None = None
    as_of: int | None = None
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    scores: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready values, without the scores."""
        data = asdict(self)
        data.pop("scores")
        return data

    def line(self) -> str:
        """Return the one-line summary: counts, seconds and outcome."""
        if self.outcome != "ok":
            error = str(self.error)
            # Input-contract messages start with the file name already.
            error = error.removeprefix(f"{self.source}: ")
            return f"{self.source}: failed after {self.seconds:.2f}s: {error}"
        parts = [
            f"{self.source}: ok",
            f"rows={self.rows}",
            f"rejected={_counts(self.rejected)}",
            f"users={self.users}",
            f"candidates={self.candidates}",
            f"ignored_before_lookback={self.ignored_before_lookback}",
            f"ignored_after_as_of={self.ignored_after_as_of}",
            f"unseen_event_types={_counts(self.unseen_event_types)}",
            f"timestamps={self.timestamp_unit}",
            f"as_of={self.as_of}",
            f"seconds={self.seconds:.2f}",
        ]
        return " ".join(parts)


def _counts(counts: Mapping[str, int]) -> str:
    """Return a total with its parts, such as ``3 (click=2, tap=1)``."""
    total = sum(counts.values())
    if not counts:
        return str(total)
    parts = ", ".join(f"{key}={value}" for key, value in counts.items())
    return f"{total} ({parts})"


def score_file(
    path: str | os.PathLike[str] | BinaryIO,
    bundle: Bundle,
    *,
    out: str | os.PathLike[str] | BinaryIO | None = None,
    fmt: str = "parquet",
    as_of: int | None = None,
    top_k: int | None = None,
    columns: Mapping[str, str] | None = None,
    name: str | None = None,
) -> FileSummary:
    """Read, score and write one behaviour file.

    Parameters
    ----------
    path:
        The input file, or a binary stream with ``name`` set.
    bundle:
        The loaded model bundle.
    out:
        Where to write the scores (path, written atomically, or binary
        stream). When None, nothing is written and the scores are returned
        in ``FileSummary.scores``.
    fmt:
        Output format: ``"parquet"``, ``"csv"`` or ``"jsonl"``.
    as_of:
        Reference time in epoch seconds; default: the file's latest event.
    top_k:
        Keep only the ``top_k`` highest-ranked topics of each user.
    columns:
        Column mapping from the name in the file to the canonical name.
    name:
        File name for streams (format and messages).

    Returns
    -------
    FileSummary
        Counts and timings, with ``outcome="ok"``.

    Raises
    ------
    InputContractError
        If the file breaks the input contract; nothing is written.
    OSError
        If the output cannot be written; no partial file is left.
    """
    started = time.perf_counter()
    read = read_events(
        path, name=name, columns=columns, as_of=as_of, keep_item_id=False
    )
    result = score_events(read.events, bundle, as_of=as_of, top_k=top_k)
    stats = result.stats
    stats.seconds["read"] = read.seconds
    summary = FileSummary(
        source=read.source,
        rows=read.rows,
        rejected=dict(read.rejected),
        users=stats.users,
        candidates=stats.candidates,
        ignored_before_lookback=stats.ignored_before_lookback,
        ignored_after_as_of=stats.ignored_after_as_of,
        unseen_event_types=stats.unseen_event_types,
        timestamp_unit=read.timestamp_unit,
        as_of=stats.as_of,
    )
    if out is None:
        summary.scores = result.scores
    else:
        write_started = time.perf_counter()
        write_scores(result.scores, out, fmt)
        stats.seconds["write"] = time.perf_counter() - write_started
        if isinstance(out, str | os.PathLike):
            summary.output = str(Path(out))
    summary.phase_seconds = dict(stats.seconds)
    summary.seconds = time.perf_counter() - started
    return summary
