"""Unit tests of the compact, growing columns the reader fills block by block."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from infer.columns import GrowingColumn, GrowingDictionary, code_dtype, narrowest


def test_narrowest_int_range() -> None:
    assert narrowest(np.array([-5, 300], dtype=np.int64)).dtype == np.int16


def test_narrowest_int_too_wide() -> None:
    piece = np.array([0, 2**40], dtype=np.int64)
    assert narrowest(piece).dtype == np.int64


def test_narrowest_float_exact() -> None:
    assert narrowest(np.array([1.0, 2.5, np.nan])).dtype == np.float32


def test_narrowest_float_inexact() -> None:
    assert narrowest(np.array([1.0, 0.1])).dtype == np.float64


def test_code_dtype_matches_pandas() -> None:
    assert [code_dtype(n) for n in (126, 127, 40_000)] == [
        np.int8,
        np.int16,
        np.int32,
    ]


def test_column_spans_segments_and_dtypes() -> None:
    # Pieces of growing width over segments of 4 rows: int8, then int16,
    # then int64 values, each stored exactly.
    pieces = [
        np.arange(3, dtype=np.int64),
        np.array([1_000, 2_000, 3_000, 4_000, 5_000], dtype=np.int64),
        np.array([2**40], dtype=np.int64),
        np.array([7], dtype=np.int64),
    ]
    column = GrowingColumn(segment_rows=4)
    for piece in pieces:
        column.append(piece)
    out = column.finish(np.int64)
    assert out.tolist() == np.concatenate(pieces).tolist()


def test_column_finish_empties() -> None:
    column = GrowingColumn(segment_rows=4)
    column.append(np.ones(6))
    column.finish(np.float64)
    assert column.size == 0


def test_column_float_values_exact() -> None:
    column = GrowingColumn(segment_rows=2)
    column.append(np.array([1.0, 0.1, 2.0]))
    column.append(np.array([4.0]))
    assert column.finish(np.float64).tolist() == [1.0, 0.1, 2.0, 4.0]


def test_dictionary_codes_across_blocks() -> None:
    dictionary = GrowingDictionary()
    first = dictionary.encode(pa.array(["b", "a", "b"]).dictionary_encode())
    second = dictionary.encode(pa.array(["c", None, "a"]).dictionary_encode())
    assert first.tolist() + second.tolist() == [0, 1, 0, 2, -1, 1]


def test_dictionary_categories_first_seen() -> None:
    dictionary = GrowingDictionary()
    dictionary.encode(pa.array(["b", "a"]).dictionary_encode())
    dictionary.encode(pa.array(["c", "b"]).dictionary_encode())
    assert list(dictionary.categories()) == ["b", "a", "c"]


def test_dictionary_counts_skip_nulls() -> None:
    dictionary = GrowingDictionary()
    dictionary.encode(pa.array(["b", None, "b"]).dictionary_encode())
    dictionary.encode(pa.array(["a", None]).dictionary_encode())
    assert dictionary.counts[: len(dictionary)].tolist() == [2, 1]
