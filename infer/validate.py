"""Convert raw record batches into canonical events and check the input contract.

The reader yields pyarrow record batches with the file's own column names
and types. ``convert_blocks`` turns each into canonical types (dictionary
strings, raw timestamps, float64 values) and raises an
``InputContractError`` with the row number for values that cannot be
parsed. ``finish`` then decides the epoch unit for the whole timestamp
column, converts it to seconds and drops, with counts, the rows that are
readable but unusable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    """Raise an input-contract error naming the required columns the file lacks."""
    names = list(present)
    missing = [mapping[c] for c in REQUIRED_COLUMNS if mapping[c] not in names]
    if missing:
        mapped = {mapping[c]: c for c in REQUIRED_COLUMNS if mapping[c] != c}
        hint = f" (column mapping {mapped})" if mapped else ""
        raise InputContractError(
            f"{source}: missing required column(s) {missing}{hint}; found columns "
            f"{names[:20]}; add the column(s), or map the file's names with a "
            f"column mapping such as --column genre=topic",
            source=source,
        )


@dataclass
class Converted:
    """Canonical batches of one file, before the whole-column checks."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    # "numeric" (raw epoch numbers as float64), "iso8601" or "timestamp"
    # (both already int64 epoch seconds).
    timestamp_kind: str | None = None
    timestamp_column: str = TIMESTAMP
    seconds: float = 0.0


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
    """Convert raw batches to canonical column types.

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
        Batches with columns ``user_id``, ``topic``, ``event_type``,
        ``timestamp``, ``value`` and, when the file has it, ``item_id``.

    Raises
    ------
    InputContractError
        On the first value that cannot be parsed, or when the timestamp
        column changes kind between epoch numbers and ISO-8601 strings.
    """
    converted = Converted(timestamp_column=mapping[TIMESTAMP])
    started = time.perf_counter()
    for batch, first_row in blocks:
        arrays: dict[str, pa.Array] = {}
        for column in STRING_COLUMNS:
            if mapping[column] in batch.schema.names:
                arrays[column] = _to_dictionary(batch.column(mapping[column]))
        stamps, kind = _convert_timestamps(
            batch.column(mapping[TIMESTAMP]), source, mapping[TIMESTAMP], first_row
        )
        if converted.timestamp_kind is None:
            converted.timestamp_kind = kind
        elif kind != converted.timestamp_kind:
            raise InputContractError(
                f"{source}: column {mapping[TIMESTAMP]!r} changes from "
                f"{converted.timestamp_kind} to {kind} at data row {first_row} or "
                f"soon after; {_FIX_TIMESTAMP}",
                source=source,
                row=first_row,
            )
        arrays[TIMESTAMP] = stamps
        if mapping[VALUE] in batch.schema.names:
            arrays[VALUE] = _convert_values(
                batch.column(mapping[VALUE]), source, mapping[VALUE], first_row
            )
        else:
            arrays[VALUE] = pa.array(np.full(batch.num_rows, DEFAULT_VALUE))
        converted.batches.append(pa.RecordBatch.from_pydict(arrays))
    converted.seconds = time.perf_counter() - started
    return converted


def _to_dictionary(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        if array.type.value_type == pa.string():
            return array.cast(_DICT) if array.type.index_type != pa.int32() else array
        return array.cast(pa.dictionary(array.type.index_type, pa.string())).cast(_DICT)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.string())
    return pc.dictionary_encode(array.cast(pa.string())).cast(_DICT)


def _first_row(mask: np.ndarray, first_row: int) -> int:
    return first_row + int(np.flatnonzero(mask)[0])


def _convert_timestamps(
    array: pa.Array, source: str, column: str, first_row: int
) -> tuple[pa.Array, str]:
    """Return raw epoch numbers (float64) or epoch seconds (int64) and the kind."""
    if array.null_count:
        row = _first_row(np.asarray(array.is_null()), first_row)
        raise InputContractError(
            f"{source}: column {column!r} is empty at data row {row}; every event "
            f"needs a time; {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return array.cast(pa.float64()), "numeric"
    if pa.types.is_timestamp(kind):
        return _timestamp_seconds(array), "timestamp"
    if pa.types.is_dictionary(kind):
        array = array.cast(pa.string())
        kind = array.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputContractError(
            f"{source}: column {column!r} has type {kind}; {_FIX_TIMESTAMP}",
            source=source,
        )
    try:
        return pc.cast(array, pa.float64()), "numeric"
    except pa.ArrowInvalid:
        pass
    return _parse_iso(array, source, column, first_row), "iso8601"


def _timestamp_seconds(array: pa.Array) -> pa.Array:
    unit = array.type.unit
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    raw = np.asarray(array.cast(pa.int64()))
    return pa.array(np.floor_divide(raw, per_second))


_OFFSET = r"(Z|z|[+-]\d\d(:?\d\d)?)$"
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def _parse_iso(array: pa.Array, source: str, column: str, first_row: int) -> pa.Array:
    """Parse ISO-8601 strings; strings without an offset are UTC."""
    has_offset = np.asarray(pc.match_substring_regex(array, _OFFSET))
    seconds = np.empty(len(array), dtype=np.int64)
    for mask, target in (
        (has_offset, pa.timestamp("us", tz="UTC")),
        (~has_offset, pa.timestamp("us")),
    ):
        if not mask.any():
            continue
        part = array.filter(pa.array(mask))
        try:
            micros = np.asarray(pc.cast(part, target).cast(pa.int64()))
        except pa.ArrowInvalid as error:
            raise _iso_error(array, source, column, first_row) from error
        seconds[mask] = np.floor_divide(micros, 1_000_000)
    return pa.array(seconds)


def _iso_error(
    array: pa.Array, source: str, column: str, first_row: int
) -> InputContractError:
    """Find the first value that is not an ISO-8601 time (error path only)."""
    numeric = np.asarray(pc.match_substring_regex(array, _NUMBER))
    for index, text in enumerate(array.to_pylist()):
        target = (
            pa.timestamp("us", tz="UTC") if _has_offset(text) else pa.timestamp("us")
        )
        if numeric[index]:
            found = f"the epoch number {text!r} in a column of ISO-8601 strings"
        else:
            try:
                pc.cast(pa.array([text]), target)
                continue
            except pa.ArrowInvalid:
                found = f"{text!r}, which is not an ISO-8601 time"
        row = first_row + index
        return InputContractError(
            f"{source}: column {column!r} at data row {row}: expected an epoch "
            f"number or an ISO-8601 time, found {found}; {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    return InputContractError(
        f"{source}: column {column!r} near data row {first_row}: cannot parse the "
        f"times; {_FIX_TIMESTAMP}",
        source=source,
        row=first_row,
    )


def _has_offset(text: str) -> bool:
    return re.search(_OFFSET, text) is not None


def _convert_values(
    array: pa.Array, source: str, column: str, first_row: int
) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.cast(pa.string())
    try:
        values = pc.cast(array, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
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
            f"{source}: column {column!r} has type {array.type}; expected numbers",
            source=source,
        ) from error
    return pc.fill_null(values, DEFAULT_VALUE)


def finish(converted: Converted, source: str, *, as_of: int | None) -> Finished:
    """Decide the timestamp unit, convert to a DataFrame and reject unusable rows.

    Parameters
    ----------
    converted:
        The output of ``convert_blocks``.
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
    rows = sum(batch.num_rows for batch in converted.batches)
    if rows == 0:
        raise InputContractError(
            f"{source}: the file has a header but no event rows; expected at least "
            f"one event; check that the producer wrote the data",
            source=source,
        )
    table = pa.Table.from_batches(converted.batches).unify_dictionaries()
    raw = table.column(TIMESTAMP).to_numpy()
    table = table.drop_columns([TIMESTAMP])
    events = table.to_pandas(self_destruct=True, split_blocks=True)
    del table

    finite = np.ones(rows, dtype=bool)
    if converted.timestamp_kind == "numeric":
        finite = np.isfinite(raw)
        unit = _epoch_unit(raw, finite, source, converted.timestamp_column)
        divisor = 1_000 if unit == "milliseconds" else 1
        seconds = np.floor(np.where(finite, raw, 0.0) / divisor).astype(np.int64)
    else:
        unit = "iso8601" if converted.timestamp_kind == "iso8601" else "timestamp"
        seconds = raw.astype(np.int64, copy=False)
    events[TIMESTAMP] = seconds
    events = events[[c for c in ALL_COLUMNS if c in events.columns]]

    upper = (int(time.time()) if as_of is None else int(as_of)) + SECONDS_PER_DAY
    checks = [
        (EMPTY_USER_ID, _empty(events[USER_ID])),
        (EMPTY_TOPIC, _empty(events[TOPIC])),
        (EMPTY_EVENT_TYPE, _empty(events[EVENT_TYPE])),
        (NON_FINITE_TIMESTAMP, ~finite),
        (NON_FINITE_VALUE, ~np.isfinite(events[VALUE].to_numpy())),
        (BEFORE_1990, seconds < MIN_TIMESTAMP),
        (AFTER_AS_OF, seconds > upper),
    ]
    rejected_any = np.zeros(rows, dtype=bool)
    rejected: dict[str, int] = {}
    first_rejected_row: dict[str, int] = {}
    for reason, mask in checks:
        new = mask & ~rejected_any
        count = int(new.sum())
        if count:
            rejected[reason] = count
            first_rejected_row[reason] = int(np.flatnonzero(new)[0]) + 1
            rejected_any |= new
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
    if rejected_any.any():
        events = events[~rejected_any]
    events = events.reset_index(drop=True)
    for column in STRING_COLUMNS:
        if column in events.columns:
            events[column] = events[column].cat.remove_unused_categories()
    return Finished(
        events=events,
        timestamp_unit=unit,
        rows=rows,
        rejected=rejected,
        first_rejected_row=first_rejected_row,
    )


def _empty(column: pd.Series) -> np.ndarray:
    """Return a mask of null, empty or whitespace-only strings of a category column."""
    categories = column.cat.categories
    blank = np.asarray(categories.str.strip() == "", dtype=bool)
    codes = column.cat.codes.to_numpy()
    mask = codes < 0
    if blank.any():
        mask |= np.isin(codes, np.flatnonzero(blank))
    return mask


def _number(value: float) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _epoch_unit(raw: np.ndarray, finite: np.ndarray, source: str, column: str) -> str:
    """Decide seconds or milliseconds for the whole column from its magnitude."""
    magnitude = np.abs(np.where(finite, raw, 0.0))
    too_large = magnitude >= TOO_LARGE_FROM
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0]) + 1
        raise InputContractError(
            f"{source}: column {column!r} at data row {row}: found "
            f"{_number(raw[row - 1])}, too large for epoch seconds or milliseconds "
            f"(microseconds or nanoseconds are not supported); {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    millis = (magnitude >= MILLISECONDS_FROM) & finite
    secs = ~millis & finite
    n_millis, n_secs = int(millis.sum()), int(secs.sum())
    if n_millis and n_secs:
        minority, unit = (
            (millis, "milliseconds") if n_millis < n_secs else (secs, "seconds")
        )
        row = int(np.flatnonzero(minority)[0]) + 1
        raise InputContractError(
            f"{source}: column {column!r} mixes epoch seconds ({n_secs} rows) and "
            f"epoch milliseconds ({n_millis} rows); data row {row} has "
            f"{_number(raw[row - 1])}, which looks like {unit}; {_FIX_TIMESTAMP}",
            source=source,
            row=row,
        )
    return "milliseconds" if n_millis else "seconds"
