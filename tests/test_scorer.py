"""Scorer and writer tests on a tiny real ONNX bundle."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from infer.bundle import Bundle, load_bundle
from infer.errors import InputContractError
from infer.features import build_features
from infer.output import format_from_name, write_scores
from infer.reader import read_events
from infer.schema import OUTPUT_COLUMNS
from infer.scorer import score_events, score_file
from tests.test_bundle import make_tiny_bundle

T0 = 1_718_000_000
DAY = 86_400


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return load_bundle(make_tiny_bundle(tmp_path / "bundle"), threads=1)


@pytest.fixture
def inputs(fixtures_dir: Path) -> Path:
    return fixtures_dir / "inputs"


def frame(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    events = pd.DataFrame(rows, columns=["user_id", "topic", "event_type", "timestamp"])
    events["value"] = 1.0
    return events


def test_score_columns_and_types(inputs: Path, bundle: Bundle) -> None:
    scores = score_events(read_events(inputs / "basic.csv").events, bundle).scores
    assert list(scores.columns) == list(OUTPUT_COLUMNS)
    assert scores["interest"].dtype == np.float32
    assert scores["rank"].dtype == np.int32
    assert scores["as_of"].dtype == np.int64


def test_score_default_as_of(inputs: Path, bundle: Bundle) -> None:
    result = score_events(read_events(inputs / "basic.csv").events, bundle)
    assert result.stats.as_of == T0 + 3600
    assert set(result.scores["as_of"]) == {T0 + 3600}


def test_score_matches_predict(inputs: Path, bundle: Bundle) -> None:
    events = read_events(inputs / "basic.csv").events
    features = build_features(events, T0 + 3600, bundle.feature_config)
    expected = dict(zip(zip(features.keys["user_id"], features.keys["topic"],
                            strict=True), bundle.predict(features.values), strict=True))
    scores = score_events(events, bundle).scores
    for user, topic, interest in scores[["user_id", "topic", "interest"]].itertuples(
        index=False
    ):
        assert interest == expected[(user, topic)]


def test_score_rank_order(bundle: Bundle) -> None:
    events = frame([
        ("u1", "old", "view", T0 - 60 * DAY),
        ("u1", "new", "view", T0),
        ("u1", "mid", "view", T0 - 10 * DAY),
        ("u2", "x", "view", T0),
    ])
    scores = score_events(events, bundle).scores
    u1 = scores[scores["user_id"] == "u1"]
    assert u1["topic"].tolist() == ["new", "mid", "old"]
    assert u1["rank"].tolist() == [1, 2, 3]
    assert scores["user_id"].tolist() == ["u1", "u1", "u1", "u2"]


def test_score_tie_breaks_by_topic(bundle: Bundle) -> None:
    events = frame([("u1", "b", "view", T0), ("u1", "a", "view", T0)])
    scores = score_events(events, bundle).scores
    assert scores["topic"].tolist() == ["a", "b"]
    assert scores["rank"].tolist() == [1, 2]


def test_score_top_k(bundle: Bundle) -> None:
    events = frame([
        ("u1", "a", "view", T0), ("u1", "b", "view", T0 - DAY),
        ("u1", "c", "view", T0 - 2 * DAY), ("u2", "a", "view", T0),
    ])
    scores = score_events(events, bundle, top_k=2).scores
    assert scores["rank"].tolist() == [1, 2, 1]
    assert scores["topic"].tolist() == ["a", "b", "a"]


def test_score_top_k_invalid(bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="top_k must be >= 1, got 0"):
        score_events(frame([("u1", "a", "view", T0)]), bundle, top_k=0)


def test_score_unseen_event_types(inputs: Path, bundle: Bundle) -> None:
    result = score_events(read_events(inputs / "unknown_event_type.csv").events, bundle)
    assert result.stats.unseen_event_types == {"teleport": 2}
    assert result.stats.candidates == 2


def test_score_explicit_as_of(bundle: Bundle) -> None:
    events = frame([("u1", "a", "view", T0), ("u1", "b", "view", T0 - 150 * DAY)])
    result = score_events(events, bundle, as_of=T0 - 100 * DAY)
    assert result.scores["topic"].tolist() == ["b"]
    assert result.stats.as_of == T0 - 100 * DAY


def test_score_empty_without_as_of(bundle: Bundle) -> None:
    with pytest.raises(InputContractError, match="the event frame is empty"):
        score_events(frame([]), bundle)


def test_score_stats(inputs: Path, bundle: Bundle) -> None:
    stats = score_events(read_events(inputs / "basic.csv").events, bundle).stats
    assert stats.rows == 5
    assert stats.users == 2
    assert stats.candidates == 4
    assert set(stats.seconds) == {"features", "inference"}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_score_file_formats(inputs: Path, bundle: Bundle, tmp_path: Path,
                            fmt: str) -> None:
    out = tmp_path / f"scores.{fmt}"
    summary = score_file(inputs / "basic.csv", bundle, out=out, fmt=fmt)
    if fmt == "parquet":
        written = pq.read_table(out).to_pandas()
    elif fmt == "csv":
        written = pd.read_csv(out)
    else:
        written = pd.read_json(out, lines=True)
    assert summary.outcome == "ok"
    assert list(written.columns) == list(OUTPUT_COLUMNS)
    assert len(written) == 4
    assert written["model_version"].astype(str).tolist() == ["tiny-test-1"] * 4


def test_score_file_summary(inputs: Path, bundle: Bundle, tmp_path: Path) -> None:
    summary = score_file(inputs / "unknown_event_type.csv", bundle,
                         out=tmp_path / "s.parquet")
    assert summary.rows == 3
    assert summary.unseen_event_types == {"teleport": 2}
    assert summary.timestamp_unit == "seconds"
    assert set(summary.phase_seconds) == {"read", "features", "inference", "write"}
    assert "unseen_event_types=2 (teleport=2)" in summary.line()
    assert json.dumps(summary.to_dict())


def test_score_file_bad_input_no_output(inputs: Path, bundle: Bundle,
                                        tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    with pytest.raises(InputContractError):
        score_file(inputs / "plain_text.csv.gz", bundle, out=out)
    assert list(tmp_path.iterdir()) == [tmp_path / "bundle"]


def test_score_file_stream_in_and_out(inputs: Path, bundle: Bundle) -> None:
    sink = io.BytesIO()
    body = io.BytesIO((inputs / "events.csv.gz").read_bytes())
    summary = score_file(body, bundle, out=sink, fmt="parquet", name="k/e.csv.gz")
    assert summary.source == "k/e.csv.gz"
    assert pq.read_table(io.BytesIO(sink.getvalue())).num_rows == 4


def test_write_failure_leaves_nothing(tmp_path: Path) -> None:
    scores = pd.DataFrame({"a": [object()]})
    out = tmp_path / "scores.parquet"
    with pytest.raises(Exception):  # noqa: B017, pyarrow cannot convert object()
        write_scores(scores, out, "parquet")
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    out.write_text("old\n")
    write_scores(pd.DataFrame({"a": [1]}), out, "csv")
    assert out.read_text() == '"a"\n1\n'


def test_write_invalid_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid output format 'xlsx'"):
        write_scores(pd.DataFrame({"a": [1]}), tmp_path / "s.xlsx", "xlsx")


def test_format_from_name() -> None:
    assert format_from_name("a/b.JSONL") == "jsonl"
    assert format_from_name("scores") is None


def random_events(bundle: Bundle, count: int, seed: int) -> pd.DataFrame:
    """Return events of 300 users over 400 days, grouped by user."""
    rng = np.random.default_rng(seed)
    event_types = [*bundle.event_types[:-1], "unseen"]
    events = pd.DataFrame(
        {
            "user_id": [f"u{i:03d}" for i in np.sort(rng.integers(0, 300, count))],
            "topic": [f"t{i}" for i in rng.integers(0, 30, count)],
            "event_type": rng.choice(event_types, count),
            "timestamp": T0 - rng.integers(0, 400 * DAY, count),
            "value": rng.random(count),
        }
    )
    return events.astype({"user_id": "category", "topic": "category"})


def test_score_chunks_match_one_pass(bundle: Bundle) -> None:
    events = random_events(bundle, 20_000, seed=1)
    one = score_events(events, bundle, as_of=T0, chunk_events=len(events))
    chunked = score_events(events, bundle, as_of=T0, chunk_events=1_000)
    pd.testing.assert_frame_equal(chunked.scores, one.scores, check_exact=True)
    assert chunked.stats.unseen_event_types == one.stats.unseen_event_types
    assert chunked.stats.users == one.stats.users


def test_score_chunks_unsorted_users(bundle: Bundle) -> None:
    events = random_events(bundle, 20_000, seed=2)
    one = score_events(events, bundle, as_of=T0, chunk_events=len(events))
    order = np.random.default_rng(3).permutation(len(events))
    shuffled = events.iloc[order].reset_index(drop=True)
    chunked = score_events(shuffled, bundle, as_of=T0, chunk_events=1_000)
    pd.testing.assert_frame_equal(chunked.scores, one.scores, check_exact=True)


def test_score_chunk_events_invalid(bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="chunk_events must be >= 1, got 0"):
        score_events(frame([("u1", "a", "view", T0)]), bundle, chunk_events=0)


def outside_history_frame() -> pd.DataFrame:
    """Return events of which 2 are before the 90-day lookback and 1 after T0."""
    return frame([
        ("u1", "a", "view", T0 - 90 * DAY),
        ("u1", "a", "view", T0 - 200 * DAY),
        ("u1", "a", "view", T0 - 90 * DAY + 1),
        ("u1", "b", "view", T0),
        ("u2", "c", "view", T0 + 3600),
    ])


def test_score_counts_ignored_events(bundle: Bundle) -> None:
    stats = score_events(outside_history_frame(), bundle, as_of=T0).stats
    assert stats.ignored_before_lookback == 2
    assert stats.ignored_after_as_of == 1
    assert stats.candidates == 2


def test_score_counts_ignored_across_chunks(bundle: Bundle) -> None:
    stats = score_events(
        outside_history_frame(), bundle, as_of=T0, chunk_events=1
    ).stats
    assert stats.ignored_before_lookback == 2
    assert stats.ignored_after_as_of == 1


def test_score_file_reports_ignored(tmp_path: Path, bundle: Bundle) -> None:
    path = tmp_path / "events.csv"
    outside_history_frame().to_csv(path, index=False)
    summary = score_file(path, bundle, as_of=T0)
    data = summary.to_dict()
    assert data["ignored_before_lookback"] == 2
    assert data["ignored_after_as_of"] == 1
    assert (
        "candidates=2 ignored_before_lookback=2 ignored_after_as_of=1 "
        in summary.line()
    )
