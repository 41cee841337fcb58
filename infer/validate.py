"""Convert raw record batches into canonical events and check the input contract.

The reader yields pyarrow record batches with the file's own column names
and types. ``convert_blocks`` turns each into compact canonical columns (string
codes against one dictionary per column, int64 epoch seconds, float64
values) and raises an ``InputContractError`` with the row number for
values that cannot be parsed. ``finish`` then checks the epoch unit of the
whole timestamp column, builds the DataFrame and drops, with counts, the
rows that are readable but unusable.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from infer.columns import GrowingColumn, GrowingDictionary, code_dtype
from infer.errors import InputContractError
from infer.schema import (
    ALL_COLUMNS,
    DEFAULT_VALUE,
    EVENT_TYPE,
    ITEM_ID,
    REQUIRED_COLUMNS,
    SECONDS_PER_DAY,
    TIMESTAMP,
    TOPIC,
    USER_ID,
    VALUE,
)

# 1990-01-01T00:00:00Z: behaviour logs of this product start later, so an
# earlier time is a unit or parsing mistake.
MIN_TIMESTAMP = 631_152_000
# Epoch numbers at or above this are milliseconds: 1e11 seconds is the year
# 5138, 1e11 milliseconds is March 1973.
MILLISECONDS_FROM = 1e11
# Epoch numbers at or above this are microseconds or nanoseconds, which the
# contract does not allow; 1e14 milliseconds is the year 5138.
TOO_LARGE_FROM = 1e14
STRING_COLUMNS = (USER_ID, TOPIC, EVENT_TYPE, ITEM_ID)
_DICT = pa.dictionary(pa.int32(), pa.string())
_FIX_TIMESTAMP = (
    "write epoch seconds, epoch milliseconds or ISO-8601 strings such as "
    "2024-06-10T08:30:00Z, one kind for the whole column"
)

# Reasons for rejected rows, in the order they are checked; a row is counted
# under the first reason that applies.
EMPTY_USER_ID = "empty user_id"
EMPTY_TOPIC = "empty topic"
EMPTY_EVENT_TYPE = "empty event_type"
NON_FINITE_TIMESTAMP = "non-finite timestamp"
NON_FINITE_VALUE = "non-finite value"
BEFORE_1990 = "timestamp before 1990"
AFTER_AS_OF = "timestamp more than a day after as_of"


def column_mapping(columns: Mapping[str, str] | None, source: str) -> dict[str, str]:
    """Return the canonical-to-file column mapping for a file-to-canonical one.

    Parameters
    ----------
    columns:
        File column name to canonical name, for example
        ``{"userId": "user_id"}``, as in training's ``--columns``.
    source:
        File name for messages.

    Raises
    ------
    InputContractError
        If a value of ``columns`` is not a canonical column name, or two
        file columns map to the same canonical one.
    """
    mapping = {column: column for column in ALL_COLUMNS}
    mapped: set[str] = set()
    for in_file, canonical in (columns or {}).items():
        if canonical not in mapping:
            raise InputContractError(
                f"{source}: invalid column mapping {in_file}={canonical}; expected "
                f"FILE_COLUMN=CANONICAL with CANONICAL one of {list(ALL_COLUMNS)}",
                source=source,
            )
        if canonical in mapped:
            raise InputContractError(
                f"{source}: invalid column mapping: canonical column {canonical!r} "
                f"is mapped twice; map one file column to it",
                source=source,
            )
        mapped.add(canonical)
        mapping[canonical] = in_file
    return mapping


def check_columns(
    present: Iterable[str], source: str, mapping: Mapping[str, str]
) -> None:
    """Raise an input-contract error for a missing or a repeated column.

    A column is missing if the file lacks a required column under its
    mapped name. A column is repeated if the name of an event-schema
    column (canonical, or mapped to a canonical one) appears more than
    once, because the reader could not tell which of them contains the data.
    Other columns may repeat, because the reader ignores them.
    """
    names = list(present)
    missing = [mapping[c] for c in REQUIRED_COLUMNS if mapping[c] not in names]
    if missing:
        mapped = {mapping[c]: c for c in REQUIRED_COLUMNS if mapping[c] != c}
        hint = f" (column mapping {mapped})" if mapped else ""
        raise InputContractError(
            f"{source}: missing required column(s) {missing}{hint}; found columns "
            f"{names[:20]}; add the column(s), or map the file's names with a "
            f"column mapping (--column genre=topic when scoring, --columns "
            f"genre=topic when training)",
            source=source,
        )
    for column in mapping.values():
        positions = [i + 1 for i, name in enumerate(names) if name == column]
        if len(positions) > 1:
            shown = ", ".join(str(position) for position in positions)
            raise InputContractError(
                f"{source}: column {column!r} appears {len(positions)} times, at "
                f"column positions {shown}; expected each column once; remove or "
                f"rename the repeated column",
                source=source,
            )


@dataclass
class _EpochCounts:
    """Counts of epoch numbers by size, for the whole-column unit decision.

    Each ``first_*`` entry is the 1-based data row and the raw number of
    the first such value, or None.
    """

    millis: int = 0
    seconds: int = 0
    first_millis: tuple[int, float] | None = None
    first_seconds: tuple[int, float] | None = None
    first_too_large: tuple[int, float] | None = None

    def add(self, raw: np.ndarray, finite: np.ndarray, offset: int) -> np.ndarray:
        """Count one block's numbers and return them as int64 epoch seconds.

        A block with any millisecond-sized number is divided by 1,000: if
        the column mixes units, ``finish`` raises before the values are
        used, and otherwise the unit of every block is the column's unit.
        Non-finite and too-large numbers become 0.
        """
        magnitude = np.abs(np.where(finite, raw, 0.0))
        too_large = magnitude >= TOO_LARGE_FROM
        millis = (magnitude >= MILLISECONDS_FROM) & finite
        seconds = ~millis & finite
        for mask, name in (
            (too_large, "first_too_large"),
            (millis, "first_millis"),
            (seconds, "first_seconds"),
        ):
            if getattr(self, name) is None and mask.any():
                index = int(np.flatnonzero(mask)[0])
                setattr(self, name, (offset + index + 1, float(raw[index])))
        n_millis = int(millis.sum())
        self.millis += n_millis
        self.seconds += int(seconds.sum())
        divisor = 1_000 if n_millis else 1
        usable = np.where(finite & ~too_large, raw, 0.0)
        return np.floor(usable / divisor).astype(np.int64)


@dataclass
class Converted:
    """Compact canonical columns of one file, before the whole-column checks."""

    columns: dict[str, GrowingColumn] = field(default_factory=dict)
    dictionaries: dict[str, GrowingDictionary] = field(default_factory=dict)
    # "numeric" (epoch numbers, unit decided in ``finish``), "iso8601" or
    # "timestamp".
    timestamp_kind: str | None = None
    timestamp_column: str = TIMESTAMP
    rows: int = 0
    epoch: _EpochCounts = field(default_factory=_EpochCounts)
    # 0-based positions of non-finite epoch numbers, one array per block.
    non_finite: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0

    def append(self, column: str, piece: np.ndarray) -> None:
        """Append one block's values of a canonical column."""
        self.columns.setdefault(column, GrowingColumn()).append(piece)


@dataclass
class Finished:
    """Canonical events of one file with the reader's counts."""

    events: pd.DataFrame
    timestamp_unit: str
    rows: int
    rejected: dict[str, int]
    first_rejected_row: dict[str, int]


def convert_blocks(
    blocks: Iterable[tuple[pa.RecordBatch, int]],
    source: str,
    mapping: Mapping[str, str],
) -> Converted:
    """Convert raw batches to compact canonical columns, block by block.

    String columns become codes against one dictionary per column, times
    become int64 epoch seconds and values float64; each block is released
    once converted.

    Parameters
    ----------
    blocks:
        Record batches with the file's column names, each with the 1-based
        number of its first data row.
    source:
        File name for messages.
    mapping:
        Canonical column name to the name in the file.

    Returns
    -------
    Converted
        Columns ``user_id``, ``topic``, ``event_type``, ``timestamp``,
        ``value`` and, when the batches have it, ``item_id``.

    Raises
    ------
    InputContractError
        On the first value that cannot be parsed, or when the timestamp
        column changes kind between epoch numbers and ISO-8601 strings.
    """
    converted = Converted(timestamp_column=mapping[TIMESTAMP])
    started = time.perf_counter()
    for batch, first_row in blocks:
        for column in STRING_COLUMNS:
            if mapping[column] in batch.schema.names:
                dictionary = converted.dictionaries.setdefault(
                    column, GrowingDictionary()
                )
                array = _to_dictionary(
                    batch.column(mapping[column]), source, mapping[column], first_row
                )
                converted.append(column, dictionary.encode(array))
        stamps, kind = _convert_timestamps(
            batch.column(mapping[TIMESTAMP]),
            source,
            mapping[TIMESTAMP],
            first_row,
            converted.timestamp_kind,
        )
        converted.timestamp_kind = kind
        raw = stamps.to_numpy(zero_copy_only=False)
        if kind == "numeric":
            finite = np.isfinite(raw)
            if not finite.all():
                converted.non_finite.append(np.flatnonzero(~finite) + converted.rows)
            raw = converted.epoch.add(raw, finite, converted.rows)
        converted.append(TIMESTAMP, raw)
        if mapping[VALUE] in batch.schema.names:
            values = _convert_values(
                batch.column(mapping[VALUE]), source, mapping[VALUE], first_row
            ).to_numpy(zero_copy_only=False)
        else:
            values = np.full(batch.num_rows, DEFAULT_VALUE)
        converted.append(VALUE, values)
        converted.rows += batch.num_rows
    converted.seconds = time.perf_counter() - started
    return converted


def _to_dictionary(
    array: pa.Array, source: str, column: str, first_row: int
) -> pa.Array:
    """Convert a string column to ``dictionary<int32, string>``.

    Numbers and booleans become their text. Raises an
    ``InputContractError`` for lists, objects and other nested values, and
    for binary values that are not UTF-8.
    """
    if pa.types.is_dictionary(array.type):
        if array.type.value_type == pa.string():
            return array.cast(_DICT) if array.type.index_type != pa.int32() else array
        array = array.dictionary_decode()
    if pa.types.is_nested(array.type):
        raise _nested_error(array, source, column, first_row)
    try:
        text = array.cast(pa.string())
    except pa.ArrowInvalid as error:
        index = _first_invalid_utf8(array)
        if index is None:
            raise _text_type_error(array, source, column, error) from error
        row = first_row + index
        value = array.slice(index, 1).cast(pa.binary())[0].as_py()
        raise InputContractError(
            f"{source}: column {column!r} at data row {row}: expected UTF-8 text, "
            f"found {value[:100]!r}, which is not valid UTF-8; write the column "
            f"as UTF-8 strings",
            source=source,
            row=row,
        ) from error
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise _text_type_error(array, source, column, error) from error
    return pc.dictionary_encode(text).cast(_DICT)


def _nested_error(
    array: pa.Array, source: str, column: str, first_row: int
) -> InputContractError:
    """Build the error for a list, object or other nested column of strings."""
    valid = np.flatnonzero(np.asarray(array.is_valid(), dtype=bool))
    fix = (
        "write one string per row in this column (one row per topic for an event "
        "with several topics)"
    )
    if len(valid) == 0:
        return InputContractError(
            f"{source}: column {column!r} has type {array.type}; expected strings; "
            f"{fix}",
            source=source,
        )
    index = int(valid[0])
    row = first_row + index
    shown = json.dumps(array[index].as_py(), default=str)[:100]
    return InputContractError(
        f"{source}: column {column!r} at data row {row}: expected a string, found "
        f"{shown} (type {array.type}); {fix}",
        source=source,
        row=row,
    )


def _text_type_error(
    array: pa.Array, source: str, column: str, error: pa.ArrowException
) -> InputContractError:
    return InputContractError(
        f"{source}: column {column!r} has type {array.type}, which cannot be read "
        f"as text ({error}); expected strings; write the column as UTF-8 strings",
        source=source,
    )


def _first_invalid_utf8(array: pa.Array) -> int | None:
    """Return the index of the first binary value that is not UTF-8, or None."""
    try:
        as_text = array.cast(pa.large_binary()).view(pa.large_string())
        as_text.validate(full=True)
    except pa.ArrowException as error:
        # pyarrow 26: "Invalid UTF8 sequence at string index N".
        found = re.search(r"UTF8 sequence at string index (\d+)", str(error))
        return int(found.group(1)) if found else None
    return None


def _first_row(mask: np.ndarray, first_row: int) -> int:
    return first_row + int(np.flatnonzero(mask)[0])


def _convert_timestamps(
    array: pa.Array,
    source: str,
    column: str,
    first_row: int,
    expected: str | None,
) -> tuple[pa.Array, str]:
    """Return raw epoch numbers (float64) or epoch seconds (int64) and the kind.

    ``expected`` is the kind of the earlier blocks, None for the first
    block; a block of another kind raises an ``InputContractError``.
    """
    if array.null_count:
        row = _first_row(np.asarray(array.is_null()), first_row)
        raise InputContractError(
            f"{source}: column {column!r} is empty at data row {row}; every event "
            f"needs a time; {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if pa.types.is_timestamp(kind):
        return _timestamp_seconds(array), "timestamp"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        stamps, found = array.cast(pa.float64()), "numeric"
    else:
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InputContractError(
                f"{source}: column {column!r} has type {kind}; {_FIX_TIMESTAMP}",
                source=source,
            )
        try:
            stamps, found = pc.cast(array, pa.float64()), "numeric"
        except pa.ArrowInvalid:
            try:
                stamps, found = pa.array(_iso_seconds(array)), "iso8601"
            except pa.ArrowInvalid as error:
                raise _timestamp_error(
                    array, source, column, first_row, expected
                ) from error
    if expected is not None and found != expected:
        # The whole block is of the other kind, so its first row is where
        # the kind changes.
        raise _kind_change_error(
            source, column, first_row, str(array[0].as_py()), expected
        )
    return stamps, found


def _timestamp_seconds(array: pa.Array) -> pa.Array:
    unit = array.type.unit
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    raw = np.asarray(array.cast(pa.int64()))
    return pa.array(np.floor_divide(raw, per_second))


# A zone offset after the time part; the "-10" that ends a date such as
# 2024-06-10 is not one.
_OFFSET = r"[Tt ][^+-]*(Z|z|[+-]\d\d(:?\d\d)?)$"
# The texts pyarrow's cast to float64 accepts (pyarrow 26), matched with
# ignore_case: decimal numbers, nan, inf and infinity.
_NUMBER = r"^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|nan|inf|infinity)$"
_KIND_NAMES = {"numeric": "epoch numbers", "iso8601": "ISO-8601 times"}


def _iso_seconds(array: pa.Array) -> np.ndarray:
    """Return epoch seconds of ISO-8601 strings; strings without an offset are UTC.

    Forms pyarrow does not parse (more than 6 fraction digits, a lowercase
    ``t`` or ``z``, the basic form ``20240610T061320Z``) are rewritten to
    the extended form first. The rewrite runs when the first string needs
    it or the plain parse fails, because a failed parse of a block costs
    about 30 times a successful one (pyarrow 26).

    Raises
    ------
    pyarrow.ArrowInvalid
        If a value is not an ISO-8601 time.
    """
    if len(array) and _NEEDS_REWRITE.search(str(array[0].as_py())):
        return _parse_iso(_extended_iso(array))
    try:
        return _parse_iso(array)
    except pa.ArrowInvalid:
        return _parse_iso(_extended_iso(array))


def _parse_iso(array: pa.Array) -> np.ndarray:
    has_offset = np.asarray(pc.match_substring_regex(array, _OFFSET))
    seconds = np.empty(len(array), dtype=np.int64)
    for mask, target in (
        (has_offset, pa.timestamp("us", tz="UTC")),
        (~has_offset, pa.timestamp("us")),
    ):
        if not mask.any():
            continue
        part = array.filter(pa.array(mask))
        micros = np.asarray(pc.cast(part, target).cast(pa.int64()))
        seconds[mask] = np.floor_divide(micros, 1_000_000)
    return seconds


# Rewrites (RE2 pattern, replacement) from ISO-8601 forms that pyarrow 26
# does not parse to ones it does, applied in this order.
_ISO_REWRITES = (
    # Basic form with seconds, then without: 20240610T061320 -> 2024-06-10T06:13:20.
    (r"^(\d{4})(\d{2})(\d{2})[Tt](\d{2})(\d{2})(\d{2})", r"\1-\2-\3T\4:\5:\6"),
    (r"^(\d{4})(\d{2})(\d{2})[Tt](\d{2})(\d{2})", r"\1-\2-\3T\4:\5"),
    (r"^(\d{4}-\d{2}-\d{2})t", r"\1T"),
    # Digits after the microseconds would be truncated anyway.
    (r"(\.\d{6})\d+", r"\1"),
    (r"z$", "Z"),
)

# Any string that one of _ISO_REWRITES would change.
_NEEDS_REWRITE = re.compile(r"^\d{8}[Tt]|^\d{4}-\d{2}-\d{2}t|\.\d{7}|z$")


def _extended_iso(array: pa.Array) -> pa.Array:
    """Return ISO-8601 strings rewritten to forms that pyarrow parses."""
    for pattern, replacement in _ISO_REWRITES:
        # A match costs about a third of a replacement (pyarrow 26), so a
        # rewrite that no string needs is skipped.
        if pc.any(pc.match_substring_regex(array, pattern)).as_py():
            array = pc.replace_substring_regex(
                array, pattern=pattern, replacement=replacement
            )
    return array


def _first_failure(array: pa.Array, parse: Callable[[pa.Array], object]) -> int | None:
    """Return the index of the first value ``parse`` rejects, or None.

    Bisection: each step parses half of the remaining range, so the search
    costs about two parses of the whole array.
    """
    try:
        parse(array)
        return None
    except pa.ArrowInvalid:
        pass
    low, high = 0, len(array)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            parse(array.slice(low, middle - low))
            low = middle
        except pa.ArrowInvalid:
            high = middle
    return low


def _timestamp_error(
    array: pa.Array, source: str, column: str, first_row: int, expected: str | None
) -> InputContractError:
    """Build the error for the first invalid time of a string block (error path).

    A value that is neither an epoch number nor an ISO-8601 time is
    reported first. Otherwise the block mixes the two kinds, and the
    message names the first row of the kind that differs from the earlier
    blocks, or, in the first block, of the kind with fewer rows.
    """
    is_number = np.asarray(
        pc.match_substring_regex(array, _NUMBER, ignore_case=True), dtype=bool
    )
    numbers = np.flatnonzero(is_number)
    others = np.flatnonzero(~is_number)
    bad = []
    index = _first_failure(
        array.filter(pa.array(is_number)), lambda part: pc.cast(part, pa.float64())
    )
    if index is not None:
        bad.append(int(numbers[index]))
    index = _first_failure(array.filter(pa.array(~is_number)), _iso_seconds)
    if index is not None:
        bad.append(int(others[index]))
    if bad:
        return _bad_time_error(array, source, column, first_row + min(bad), min(bad))

    if expected is None:
        minority = "iso8601" if len(others) <= len(numbers) else "numeric"
        first = int((others if minority == "iso8601" else numbers)[0])
        row = first_row + first
        last_row = first_row + len(array) - 1
        return InputContractError(
            f"{source}: column {column!r} mixes epoch numbers ({len(numbers)} rows) "
            f"and ISO-8601 times ({len(others)} rows) in data rows {first_row} to "
            f"{last_row}; data row {row} has {array[first].as_py()!r}, which is "
            f"{_one(minority)}; {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    first = int((others if expected == "numeric" else numbers)[0])
    return _kind_change_error(
        source, column, first_row + first, array[first].as_py(), expected
    )


def _one(kind: str) -> str:
    return "an ISO-8601 time" if kind == "iso8601" else "an epoch number"


def _bad_time_error(
    array: pa.Array, source: str, column: str, row: int, index: int
) -> InputContractError:
    text = array[index].as_py()
    if text.strip() == column:
        return InputContractError(
            f"{source}: column {column!r} at data row {row}: expected epoch "
            f"seconds, epoch milliseconds or an ISO-8601 time, found {text!r}, the "
            f"column's own name, so the header line is repeated there; remove the "
            f"repeated line (when joining files, keep only the first file's header)",
            source=source,
            row=row,
        )
    return InputContractError(
        f"{source}: column {column!r} at data row {row}: expected epoch seconds, "
        f"epoch milliseconds or an ISO-8601 time, found {text!r}; {_FIX_TIMESTAMP}",
        source=source,
        row=row,
    )


def _kind_change_error(
    source: str, column: str, row: int, text: str, expected: str
) -> InputContractError:
    found = "numeric" if expected == "iso8601" else "iso8601"
    return InputContractError(
        f"{source}: column {column!r} has {_KIND_NAMES[expected]} up to data row "
        f"{row - 1}, but data row {row} has {text!r}, which is {_one(found)}; "
        f"{_FIX_TIMESTAMP}",
        source=source,
        row=row,
    )


def _convert_values(
    array: pa.Array, source: str, column: str, first_row: int
) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    try:
        values = pc.cast(array, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        texts = array.to_pylist()
        for index, text in enumerate(texts):
            try:
                if text is not None:
                    float(text)
            except (TypeError, ValueError):
                row = first_row + index
                raise InputContractError(
                    f"{source}: column {column!r} at data row {row}: expected a "
                    f"number, found {text!r}; write plain numbers such as 4.5, or "
                    f"leave the field empty for the default {DEFAULT_VALUE}",
                    source=source,
                    row=row,
                ) from error
        raise InputContractError(
            f"{source}: column {column!r} has type {array.type}; expected numbers; "
            f"write plain numbers such as 4.5, or leave the field empty for the "
            f"default {DEFAULT_VALUE}",
            source=source,
        ) from error
    return pc.fill_null(values, DEFAULT_VALUE)


def finish(converted: Converted, source: str, *, as_of: int | None) -> Finished:
    """Decide the timestamp unit, build the DataFrame and reject unusable rows.

    Parameters
    ----------
    converted:
        The output of ``convert_blocks``; its columns are emptied.
    source:
        File name for messages.
    as_of:
        Epoch seconds; rows more than a day after it are rejected. When
        None, the bound is a day after the current time.

    Returns
    -------
    Finished
        Accepted events and the rejection counts.

    Raises
    ------
    InputContractError
        If the file has no rows, the epoch unit is ambiguous, or every row
        is rejected.
    """
    rows = converted.rows
    if rows == 0:
        raise InputContractError(
            f"{source}: the file has a header but no event rows; expected at least "
            f"one event; check that the producer wrote the data",
            source=source,
        )
    finite = np.ones(rows, dtype=bool)
    if converted.timestamp_kind == "numeric":
        for positions in converted.non_finite:
            finite[positions] = False
        unit = _epoch_unit(converted.epoch, source, converted.timestamp_column)
    else:
        unit = "iso8601" if converted.timestamp_kind == "iso8601" else "timestamp"

    # One column at a time, so that only one column's segments and final
    # array are resident together.
    present = [c for c in ALL_COLUMNS if c in converted.columns]
    arrays: dict[str, np.ndarray] = {}
    categories: dict[str, pd.Index] = {}
    for column in present:
        if column in converted.dictionaries:
            categories[column] = converted.dictionaries[column].categories()
            dtype = code_dtype(len(categories[column]))
        else:
            dtype = np.dtype(np.int64 if column == TIMESTAMP else np.float64)
        arrays[column] = converted.columns[column].finish(dtype)

    upper = (int(time.time()) if as_of is None else int(as_of)) + SECONDS_PER_DAY
    rejected_any = np.zeros(rows, dtype=bool)
    rejected: dict[str, int] = {}
    first_rejected_row: dict[str, int] = {}
    for reason, mask in _rejection_masks(arrays, categories, finite, upper):
        new = mask & ~rejected_any
        count = int(new.sum())
        if count:
            rejected[reason] = count
            first_rejected_row[reason] = int(np.flatnonzero(new)[0]) + 1
            rejected_any |= new
    del finite
    if rejected_any.all():
        reasons = ", ".join(
            f"{reason}: {count} (first at data row {first_rejected_row[reason]})"
            for reason, count in rejected.items()
        )
        raise InputContractError(
            f"{source}: all {rows} rows were rejected ({reasons}); fix the rows or "
            f"check the column mapping and the as_of time",
            source=source,
            row=1,
        )
    used = {
        column: _used(dictionary, arrays[column], rejected_any)
        for column, dictionary in converted.dictionaries.items()
    }
    if rejected_any.any():
        keep = ~rejected_any
        for column in present:
            arrays[column] = arrays[column][keep]
    del rejected_any

    data: dict[str, Any] = {}
    for column in present:
        if column in categories:
            codes, kept = _drop_unused(
                arrays.pop(column), categories[column], used[column]
            )
            data[column] = pd.Categorical.from_codes(codes, categories=kept)
        else:
            data[column] = arrays.pop(column)
    return Finished(
        events=pd.DataFrame(data, copy=False),
        timestamp_unit=unit,
        rows=rows,
        rejected=rejected,
        first_rejected_row=first_rejected_row,
    )


def _rejection_masks(
    arrays: Mapping[str, np.ndarray],
    categories: Mapping[str, pd.Index],
    finite: np.ndarray,
    upper: int,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield each rejection reason with its row mask, in the order of checking.

    The masks are made one at a time, so only one is held at once.
    """
    for reason, column in (
        (EMPTY_USER_ID, USER_ID),
        (EMPTY_TOPIC, TOPIC),
        (EMPTY_EVENT_TYPE, EVENT_TYPE),
    ):
        yield reason, _empty(arrays[column], categories[column])
    yield NON_FINITE_TIMESTAMP, ~finite
    yield NON_FINITE_VALUE, ~np.isfinite(arrays[VALUE])
    yield BEFORE_1990, arrays[TIMESTAMP] < MIN_TIMESTAMP
    yield AFTER_AS_OF, arrays[TIMESTAMP] > upper


def _empty(codes: np.ndarray, categories: pd.Index) -> np.ndarray:
    """Return a mask of null, empty or whitespace-only strings of a coded column."""
    blank = np.asarray(categories.str.strip() == "", dtype=bool)
    mask = codes < 0
    if blank.any():
        mask |= np.isin(codes, np.flatnonzero(blank))
    return mask


def _used(
    dictionary: GrowingDictionary, codes: np.ndarray, rejected: np.ndarray
) -> np.ndarray:
    """Return a mask, per code, of the strings that some accepted row has."""
    if not rejected.any():
        return dictionary.used()
    counts = dictionary.counts[: len(dictionary)].copy()
    rejected_codes = codes[rejected]
    rejected_codes = rejected_codes[rejected_codes >= 0]
    counts -= np.bincount(rejected_codes, minlength=len(counts))
    return counts > 0


def _drop_unused(
    codes: np.ndarray, categories: pd.Index, used: np.ndarray
) -> tuple[np.ndarray, pd.Index]:
    """Return codes and categories without the categories no row uses."""
    if used.all():
        return codes, categories
    kept = categories[used]
    remap = (np.cumsum(used) - 1).astype(code_dtype(len(kept)))
    new_codes = np.where(codes >= 0, remap[codes], -1).astype(remap.dtype)
    return new_codes, kept


def _number(value: float) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _epoch_unit(counts: _EpochCounts, source: str, column: str) -> str:
    """Decide seconds or milliseconds for the whole column from its magnitude."""
    if counts.first_too_large is not None:
        row, raw = counts.first_too_large
        raise InputContractError(
            f"{source}: column {column!r} at data row {row}: found "
            f"{_number(raw)}, too large for epoch seconds or milliseconds "
            f"(microseconds or nanoseconds are not supported); {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    n_millis, n_secs = counts.millis, counts.seconds
    if n_millis and n_secs:
        first, unit = (
            (counts.first_millis, "milliseconds")
            if n_millis < n_secs
            else (counts.first_seconds, "seconds")
        )
        # Both counts are positive, so both first values were recorded.
        row, raw = first or (0, 0.0)
        raise InputContractError(
            f"{source}: column {column!r} mixes epoch seconds ({n_secs} rows) and "
            f"epoch milliseconds ({n_millis} rows); data row {row} has "
            f"{_number(raw)}, which looks like {unit}; {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    return "milliseconds" if n_millis else "seconds"
