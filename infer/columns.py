"""Compact columns that grow block by block while a file is read.

The reader converts each block of a file into numpy pieces and appends
them here, so no whole-file table of raw values is ever held. A piece is
stored in the narrowest dtype that represents it exactly (an ``int64`` time that
fits ``int32`` takes 4 bytes, a ``float64`` value that fits ``float32``
takes 4, codes of a small dictionary take 1 or 2), in segments of
anonymous memory. ``GrowingColumn.finish`` copies the segments into one
array of the final dtype and unmaps each segment as soon as it is copied,
so the peak stays near the size of the final column, not twice it.

String columns are encoded against a ``GrowingDictionary``: each block's
own dictionary is mapped to codes of the strings seen so far, in order of
first appearance.
"""

from __future__ import annotations

import mmap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Rows per segment. With 8-byte values a segment is 4 MiB: few enough
# segments for a large file, and little unused space for a small one (the
# pages of a segment that are never written are never resident).
SEGMENT_ROWS = 1 << 19
_INT_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))


def code_dtype(categories: int) -> np.dtype:
    """Return the integer dtype pandas uses for codes of ``categories`` values.

    Codes built in this dtype are taken by ``pandas.Categorical.from_codes``
    without a copy.
    """
    for dtype in _INT_DTYPES:
        if categories < np.iinfo(dtype).max:
            return dtype
    return np.dtype(np.int64)


def narrowest(piece: np.ndarray) -> np.ndarray:
    """Return ``piece`` in the narrowest dtype that represents every value exactly.

    Integers narrow to ``int8``, ``int16`` or ``int32`` by their range;
    ``float64`` narrows to ``float32`` when every value (NaN included)
    survives the round trip. Other dtypes are returned unchanged.
    """
    if len(piece) == 0:
        return piece
    if piece.dtype.kind == "i":
        low, high = piece.min(), piece.max()
        for dtype in _INT_DTYPES:
            if dtype.itemsize >= piece.dtype.itemsize:
                break
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return piece.astype(dtype)
        return piece
    if piece.dtype == np.float64:
        with np.errstate(all="ignore"):
            small = piece.astype(np.float32)
        if np.array_equal(small, piece, equal_nan=True):
            return small
    return piece


class _Segment:
    """A fixed-size array in its own anonymous memory map."""

    def __init__(self, dtype: np.dtype, rows: int):
        self._memory = mmap.mmap(-1, rows * dtype.itemsize)
        self.array = np.frombuffer(self._memory, dtype=dtype)
        self.size = 0

    def free(self) -> None:
        # The numpy view of the map must go before the map can close.
        self.array = np.empty(0, dtype=self.array.dtype)
        self._memory.close()


class GrowingColumn:
    """A one-dimensional column appended to piece by piece.

    Attributes
    ----------
    size:
        Number of values appended so far.
    """

    def __init__(self, segment_rows: int = SEGMENT_ROWS):
        self._segment_rows = segment_rows
        self._segments: list[_Segment] = []
        self.size = 0

    def append(self, piece: np.ndarray) -> None:
        """Append the values of a one-dimensional array, stored narrowed."""
        piece = narrowest(piece)
        start = 0
        while start < len(piece):
            segment = self._segments[-1] if self._segments else None
            if (
                segment is None
                or segment.size == len(segment.array)
                or not np.can_cast(piece.dtype, segment.array.dtype, "safe")
            ):
                segment = _Segment(piece.dtype, self._segment_rows)
                self._segments.append(segment)
            stop = min(len(piece), start + len(segment.array) - segment.size)
            segment.array[segment.size : segment.size + stop - start] = piece[
                start:stop
            ]
            segment.size += stop - start
            start = stop
        self.size += len(piece)

    def finish(self, dtype: np.dtype | type) -> np.ndarray:
        """Return every value in one array of ``dtype``; the column is then empty.

        Each segment is unmapped as soon as it has been copied.
        """
        out = np.empty(self.size, dtype=dtype)
        position = 0
        for segment in self._segments:
            out[position : position + segment.size] = segment.array[: segment.size]
            position += segment.size
            segment.free()
        self._segments = []
        self.size = 0
        return out


class GrowingDictionary:
    """The distinct strings of one column, coded in order of first appearance.

    Attributes
    ----------
    counts:
        Rows per code so far (``int64``), so that unused strings can be
        dropped without another pass over the codes.
    """

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self.counts = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._codes)

    def encode(self, array: pa.DictionaryArray) -> np.ndarray:
        """Return codes of ``array``'s values in this dictionary, adding new strings.

        Parameters
        ----------
        array:
            A dictionary-encoded string array (one block of a column).

        Returns
        -------
        numpy.ndarray
            ``int32`` codes, -1 where ``array`` is null.
        """
        codes = self._codes
        local = array.dictionary.to_pylist()
        # One extra last entry maps null indices, filled with its position,
        # to code -1.
        lookup = np.empty(len(local) + 1, dtype=np.int32)
        lookup[:-1] = [codes.setdefault(text, len(codes)) for text in local]
        lookup[-1] = -1
        indices = array.indices
        if indices.null_count:
            indices = pc.fill_null(indices, len(local))
        positions = indices.to_numpy()
        if len(codes) > len(self.counts):
            grown = np.zeros(max(len(codes), 2 * len(self.counts)), dtype=np.int64)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        # The extra last bin counts the nulls, which have no code.
        per_local = np.bincount(positions, minlength=len(lookup))[:-1]
        np.add.at(self.counts, lookup[:-1], per_local)
        return lookup[positions]

    def categories(self) -> pd.Index:
        """Return the strings in code order."""
        return pd.Index(list(self._codes))

    def used(self) -> np.ndarray:
        """Return a mask, per code, of the strings that some row has."""
        return self.counts[: len(self._codes)] > 0
