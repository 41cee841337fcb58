"""Read behaviour files (CSV, Parquet, JSON Lines, optionally gzip) into events.

``read_events`` is the one entry point. It takes a path or a binary stream
(for example an S3 object body), takes the format from the file name,
checks the name against the first bytes of the content, reads the file
with pyarrow's CSV, JSON or Parquet reader in blocks, and hands the blocks
to ``infer.validate``, which converts them into a canonical event frame
(see ``infer.schema``) and checks the input contract.

Every problem with the file raises one ``InputContractError`` that names
the file, the column or row, what was expected, what was found and what to
do. Rows that are readable but unusable (empty ids, implausible
timestamps, non-finite numbers) are dropped and counted in
``ReadResult.rejected``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from infer import validate
from infer.errors import InputContractError
from infer.schema import ALL_COLUMNS, ITEM_ID, TIMESTAMP

FORMATS = ("csv", "parquet", "jsonl")
# Name suffixes and the format each one means; ".gz" may follow CSV and
# JSON Lines suffixes.
_SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON Lines"}
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
# Bytes read ahead to check the magic and parse the CSV header line.
_HEAD_BYTES = 1 << 20
# Block size of the CSV reader. pyarrow parses blocks ahead of the one
# being converted, so its memory grows with the block size. On a 231 MB CSV
# its peak allocation measured about 40 MiB at 1 MiB blocks and 115 to 140
# MiB at 8 MiB blocks, and 1 MiB blocks parsed as fast as 8 MiB ones.
_CSV_BLOCK_BYTES = 1 << 20
# Largest read from the gzip decompressor, so the byte count in a message
# about a broken gzip stream is low by at most this much.
_GZIP_PIECE_BYTES = 64 << 10
# Chunk size of the JSON Lines reader. At this size the per-chunk overhead
# is small next to the parsing work.
_BLOCK_BYTES = 8 << 20
# Rows per Parquet batch; a batch is converted and released before the next.
_PARQUET_BATCH_ROWS = 1 << 17


@dataclass
class ReadResult:
    """Canonical events of one behaviour file and what the reader saw.

    Attributes
    ----------
    events:
        The accepted events: ``user_id``, ``topic``, ``event_type`` (and
        ``item_id`` when present) as pandas ``category``; ``timestamp``
        int64 epoch seconds UTC; ``value`` float64 (1.0 where absent).
    source:
        The file name used in messages.
    format:
        ``"csv"``, ``"parquet"`` or ``"jsonl"``.
    compressed:
        True for gzip-compressed files.
    timestamp_unit:
        How the file wrote times: ``"seconds"``, ``"milliseconds"``,
        ``"iso8601"``, or ``"timestamp"`` for a Parquet timestamp column.
    rows:
        Data rows in the file, accepted and rejected.
    rejected:
        Rejected rows per reason, for example ``{"empty user_id": 2}``.
    first_rejected_row:
        The 1-based data row of the first rejection per reason.
    seconds:
        Wall time of the read, in seconds.
    path:
        The file path when the source was a path; None for streams.
    """

    events: pd.DataFrame
    source: str
    format: str
    compressed: bool
    timestamp_unit: str
    rows: int
    rejected: dict[str, int] = field(default_factory=dict)
    first_rejected_row: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    path: Path | None = None

    @property
    def files(self) -> list[dict[str, Any]]:
        """The file that was read as ``[{"path", "rows"}]``; empty for streams."""
        if self.path is None:
            return []
        return [{"path": str(self.path), "rows": self.rows}]

    @property
    def rejected_rows(self) -> int:
        """Number of rejected rows over all reasons."""
        return sum(self.rejected.values())


def detect_format(name: str) -> tuple[str, bool]:
    """Return the format and whether the file is gzip-compressed, from its name.

    Parameters
    ----------
    name:
        A file name or S3 key such as ``events.csv.gz``.

    Returns
    -------
    tuple[str, bool]
        ``("csv" | "parquet" | "jsonl", compressed)``.

    Raises
    ------
    InputContractError
        If the suffix is not one of the supported ones.
    """
    lower = name.lower()
    compressed = lower.endswith(".gz")
    stem = lower[: -len(".gz")] if compressed else lower
    for suffix, fmt in _SUFFIXES.items():
        if stem.endswith(suffix) and not (compressed and fmt == "parquet"):
            return fmt, compressed
    raise InputContractError(
        f"{name}: unsupported file name; expected a name ending in .csv, .csv.gz, "
        f".jsonl, .jsonl.gz, .ndjson, .ndjson.gz, .parquet or .pq, found "
        f"{Path(name).suffix or 'no suffix'!r}; rename the file to match its format",
        source=name,
    )


def read_events(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
    as_of: int | None = None,
    keep_item_id: bool = True,
) -> ReadResult:
    """Read one behaviour file into a canonical event frame.

    Parameters
    ----------
    source:
        A path, or a binary stream opened for reading (an S3 body works;
        it is read once, front to back, except Parquet, which needs the
        whole object in memory because its index is at the end).
    name:
        The file name to take the format from and to use in messages;
        required for streams, defaults to the path's name.
    columns:
        Column mapping from the name in the file to the canonical name,
        for example ``{"userId": "user_id"}``. Unmapped canonical columns
        are read under their own name.
    as_of:
        The reference time of the scoring run, epoch seconds. Rows more
        than a day after it are rejected. Without it, rows more than a day
        after the current time are rejected.
    keep_item_id:
        Read the ``item_id`` column when the file has it. Scoring does not
        use it and passes False, which saves its parsing and memory.

    Returns
    -------
    ReadResult
        The accepted events and the counts the run summary needs.

    Raises
    ------
    InputContractError
        If the name, content, columns or a value break the input contract,
        or if every row is rejected.
    """
    started = time.perf_counter()
    if name is None:
        if isinstance(source, str | os.PathLike):
            name = Path(source).name
        else:
            raise TypeError("read_events: name is required when source is a stream")
    mapping = validate.column_mapping(columns, name)
    fmt, compressed = detect_format(name)
    canonical = tuple(c for c in ALL_COLUMNS if keep_item_id or c != ITEM_ID)

    try:
        with _open(source) as raw:
            head = raw.read(len(_PARQUET_MAGIC))
            _check_magic(name, fmt, compressed, head)
            stream: io.RawIOBase = _Prefixed(head, raw)
            if fmt == "parquet":
                blocks = _parquet_blocks(stream, source, name, mapping, canonical)
            else:
                if compressed:
                    stream = _Gunzip(stream, name)
                if fmt == "csv":
                    blocks = _csv_blocks(stream, source, name, mapping, canonical)
                else:
                    blocks = _jsonl_blocks(stream, name, mapping, canonical)
            converted = validate.convert_blocks(blocks, name, mapping)
        # The arrow memory of the parsed blocks is no longer needed.
        pa.default_memory_pool().release_unused()

        result = validate.finish(converted, name, as_of=as_of)
    except pa.ArrowMemoryError:
        raise
    except (pa.ArrowException, UnicodeError) as error:
        # NOTE: the known content problems raise their own messages above;
        # this catches the ones not foreseen, so that a bad file is reported
        # as an input-contract error and not retried as a crash.
        raise _unforeseen_error(name, fmt, error) from error
    return ReadResult(
        events=result.events,
        source=name,
        format=fmt,
        compressed=compressed,
        timestamp_unit=result.timestamp_unit,
        rows=result.rows,
        rejected=result.rejected,
        first_rejected_row=result.first_rejected_row,
        seconds=time.perf_counter() - started,
        path=Path(source) if isinstance(source, str | os.PathLike) else None,
    )


def _unforeseen_error(name: str, fmt: str, error: Exception) -> InputContractError:
    return InputContractError(
        f"{name}: cannot read the {_FORMAT_NAMES[fmt]} file "
        f"({type(error).__name__}: {error}); expected UTF-8 text with one string, "
        f"time or number per field; check the file's encoding and the types of "
        f"its columns",
        source=name,
    )


class _open:
    """Context manager that yields a binary stream and closes only what it opened."""

    def __init__(self, source: str | os.PathLike[str] | BinaryIO):
        self._source = source
        self._owned: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if isinstance(self._source, str | os.PathLike):
            try:
                self._owned = open(self._source, "rb")  # noqa: SIM115
            except OSError as error:
                raise InputContractError(
                    f"{self._source}: cannot open the file: {error.strerror}; "
                    f"check the path and its permissions",
                    source=str(self._source),
                ) from error
            return self._owned
        return self._source

    def __exit__(self, *exc_info: object) -> None:
        if self._owned is not None:
            self._owned.close()


class _Prefixed(io.RawIOBase):
    """A read-only stream that returns ``prefix`` and then the rest of ``stream``.

    It lets the reader look at the first bytes of a non-seekable stream (an
    S3 body) and still hand the whole content to pyarrow.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO | io.RawIOBase | pa.NativeFile):
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = self._prefix + self._stream.read()
            self._prefix = b""
            return data
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._stream.read(size - len(data)) or b""
            return data
        return self._stream.read(size) or b""

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Gunzip(io.RawIOBase):
    """A read-only stream of the decompressed content of a gzip stream.

    A gzip stream that ends early or is corrupt raises an
    ``InputContractError`` that names the file, in place of pyarrow's
    ``OSError``.
    """

    def __init__(self, stream: io.RawIOBase, name: str):
        self._stream = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "gzip")
        self._name = name
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # Reads of at most _GZIP_PIECE_BYTES keep the position in the message
        # close to the end of the data, because a failed read returns nothing.
        pieces = []
        left = -1 if size is None or size < 0 else size
        while left != 0:
            want = _GZIP_PIECE_BYTES if left < 0 else min(left, _GZIP_PIECE_BYTES)
            try:
                piece = self._stream.read(want)
            except OSError as error:
                raise self._error(error) from error
            if not piece:
                break
            pieces.append(piece)
            self._position += len(piece)
            if left > 0:
                left -= len(piece)
        return b"".join(pieces)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _error(self, error: OSError) -> InputContractError:
        # pyarrow 26 reports a missing end as "Truncated compressed stream".
        if "truncated" in str(error).lower():
            return InputContractError(
                f"{self._name}: the gzip stream ends early (truncated or incomplete "
                f"upload) after about {self._position} bytes of data; upload the "
                f"complete file again",
                source=self._name,
            )
        return InputContractError(
            f"{self._name}: the gzip stream is corrupt after about "
            f"{self._position} bytes of data ({error}); compress the file again "
            f"with gzip and upload it again",
            source=self._name,
        )


def _check_magic(name: str, fmt: str, compressed: bool, head: bytes) -> None:
    if not head:
        raise InputContractError(
            f"{name}: the file is empty (0 bytes); expected a header line and at "
            f"least one event row; check that the producer finished writing it",
            source=name,
        )
    is_gzip = head.startswith(_GZIP_MAGIC)
    if compressed and not is_gzip:
        raise InputContractError(
            f"{name}: the name ends in .gz but the content is not gzip-compressed "
            f"(first bytes {head[:2]!r}, expected {_GZIP_MAGIC!r}); compress the "
            f"file with gzip or remove .gz from its name",
            source=name,
        )
    if not compressed and is_gzip:
        raise InputContractError(
            f"{name}: the content is gzip-compressed but the name does not end in "
            f".gz; add .gz to the name",
            source=name,
        )
    if fmt == "parquet" and head != _PARQUET_MAGIC:
        raise InputContractError(
            f"{name}: the file name ends in .parquet but the content does not "
            f"start with the Parquet magic bytes (first bytes {head!r}, expected "
            f"{_PARQUET_MAGIC!r}); rename the file to match its format",
            source=name,
        )
    if fmt != "parquet" and head == _PARQUET_MAGIC:
        raise InputContractError(
            f"{name}: the content is a Parquet file but the file name is for {fmt}; "
            f"rename the file to end in .parquet",
            source=name,
        )


Blocks = Iterator[tuple[pa.RecordBatch, int]]
"""Record batches in file order, each with the 1-based number of its first row."""


def _parquet_blocks(
    stream: io.RawIOBase,
    source: str | os.PathLike[str] | BinaryIO,
    name: str,
    mapping: Mapping[str, str],
    canonical: tuple[str, ...],
) -> Blocks:
    if isinstance(source, str | os.PathLike):
        target: str | os.PathLike[str] | pa.BufferReader = source
    else:
        # Parquet keeps its index at the end of the file, so a stream that
        # cannot seek is read into memory first.
        target = pa.BufferReader(stream.read())
    try:
        parquet = pq.ParquetFile(target)
    except (pa.ArrowException, OSError) as error:
        raise InputContractError(
            f"{name}: cannot read the Parquet file: {error}; check that it was "
            f"written completely",
            source=name,
        ) from error
    present = parquet.schema_arrow.names
    validate.check_columns(present, name, mapping)
    wanted = [mapping[column] for column in canonical if mapping[column] in present]
    row = 1
    try:
        for batch in parquet.iter_batches(
            batch_size=_PARQUET_BATCH_ROWS, columns=wanted
        ):
            yield batch, row
            row += batch.num_rows
    except (pa.ArrowException, OSError) as error:
        raise InputContractError(
            f"{name}: cannot read the Parquet file after row {row - 1}: {error}; "
            f"check that it was written completely",
            source=name,
        ) from error


def _csv_header(head: bytes, name: str) -> list[str]:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next(csv.reader(io.StringIO(text)), None)
    if not first or first == [""]:
        raise InputContractError(
            f"{name}: no header line found; expected a first line naming the "
            f"columns, for example user_id,topic,event_type,timestamp",
            source=name,
        )
    return first


def _csv_blocks(
    stream: io.RawIOBase,
    source: str | os.PathLike[str] | BinaryIO,
    name: str,
    mapping: Mapping[str, str],
    canonical: tuple[str, ...],
) -> Blocks:
    head = stream.read(_HEAD_BYTES)
    _check_no_nul(head, name)
    header = _csv_header(head, name)
    validate.check_columns(header, name, mapping)
    wanted = [mapping[column] for column in canonical if mapping[column] in header]
    # Every column is read as text, so that a bad value surfaces in
    # validate.py with its row number instead of inside the CSV parser. The
    # string columns are dictionary-encoded by the parser itself.
    column_types: dict[str, pa.DataType] = {column: pa.string() for column in wanted}
    for column in (
        mapping["user_id"],
        mapping["topic"],
        mapping["event_type"],
        mapping["item_id"],
    ):
        if column in wanted:
            column_types[column] = pa.dictionary(pa.int32(), pa.string())
    # ConvertOptions copies column_types, so the dict is complete before.
    convert = pa_csv.ConvertOptions(
        include_columns=wanted,
        column_types=column_types,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    bad_rows: list[str] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        bad_rows.append(row.text)
        return "error"

    parse = pa_csv.ParseOptions(invalid_row_handler=on_invalid_row)
    read = pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    body = _Prefixed(head, stream)
    row = 1
    try:
        reader = pa_csv.open_csv(
            pa.PythonFile(body, mode="r"),
            read_options=read,
            parse_options=parse,
            convert_options=convert,
        )
        for batch in reader:
            yield batch, row
            row += batch.num_rows
    except pa.ArrowInvalid as error:
        raise _csv_parse_error(error, source, name, header, bad_rows, row) from error


def _csv_parse_error(
    error: pa.ArrowInvalid,
    source: str | os.PathLike[str] | BinaryIO,
    name: str,
    header: list[str],
    bad_rows: list[str],
    next_row: int,
) -> InputContractError:
    """Build the input-contract error for a CSV parse failure.

    ``next_row`` is the first data row not yet delivered to the caller.
    """
    # pyarrow 26 raises this when a row does not fit in two blocks.
    if "straddles two block boundaries" in str(error):
        return _long_row_error(source, name, next_row)
    # pyarrow 26: "In CSV column #1: CSV conversion error to string: invalid
    # UTF8 data", where the number is the column's position in the file.
    invalid_utf8 = re.match(r"In CSV column #(\d+): .*invalid UTF8", str(error))
    if invalid_utf8:
        position = int(invalid_utf8.group(1))
        column = header[position] if position < len(header) else f"#{position}"
        return _utf8_error(source, name, column, position, next_row)
    if not bad_rows:
        return InputContractError(
            f"{name}: cannot parse the CSV file: {error}; check that it is "
            f"comma-separated UTF-8 text with one header line",
            source=name,
        )
    row = None
    if isinstance(source, str | os.PathLike):
        row = _find_csv_row(source, name, bad_rows[0])
    where = f"data row {row}" if row is not None else "a data row"
    return InputContractError(
        f"{name}: {where} has a different number of fields than the header: "
        f"{bad_rows[0][:200]!r} ({error}); quote fields that contain commas, "
        f"or fix the row",
        source=name,
        row=row,
    )


def _long_row_error(
    source: str | os.PathLike[str] | BinaryIO, name: str, next_row: int
) -> InputContractError:
    # A row up to one block always parses, and a longer one only when it
    # happens to fit in two blocks, so the block size is the stated limit.
    limit = f"{_CSV_BLOCK_BYTES / (1 << 20):g} MiB"
    row = None
    if isinstance(source, str | os.PathLike):
        row = _find_long_row(source, name, _CSV_BLOCK_BYTES)
    if row is None:
        return InputContractError(
            f"{name}: a data row at or after data row {next_row} is longer than the "
            f"reader's maximum row size of {limit}; expected event rows of a few "
            f"hundred bytes; look for a missing line break or an overlong value "
            f"there, and fix or remove that row",
            source=name,
            row=next_row,
        )
    return InputContractError(
        f"{name}: data row {row} is longer than the reader's maximum row size of "
        f"{limit}; expected event rows of a few hundred bytes; look for a missing "
        f"line break or an overlong value in that row, and fix or remove it",
        source=name,
        row=row,
    )


def _utf8_error(
    source: str | os.PathLike[str] | BinaryIO,
    name: str,
    column: str,
    position: int,
    next_row: int,
) -> InputContractError:
    found = None
    if isinstance(source, str | os.PathLike):
        found = _find_invalid_utf8(source, name, position)
    if found is None:
        return InputContractError(
            f"{name}: column {column!r} has bytes that are not valid UTF-8 at or "
            f"after data row {next_row}; expected UTF-8 text; re-export the file "
            f"as UTF-8",
            source=name,
            row=next_row,
        )
    row, field = found
    return InputContractError(
        f"{name}: column {column!r} at data row {row}: expected UTF-8 text, found "
        f"{field[:100]!r}, which is not valid UTF-8; re-export the file as UTF-8",
        source=name,
        row=row,
    )


def _find_invalid_utf8(
    path: str | os.PathLike[str], name: str, position: int
) -> tuple[int, bytes] | None:
    """Return the data row and raw value of the first invalid UTF-8 field, or None.

    Error path only. Only the field at ``position`` counts, because the
    CSV reader decodes only the columns it reads. A line break inside a
    quoted field would shift the row number, but the CSV reader rejects
    such fields anyway.
    """
    try:
        with _reopen(path, name) as handle:
            handle.readline()
            for row, line in enumerate(handle, start=1):
                try:
                    line.decode("utf-8")
                    continue
                except UnicodeDecodeError:
                    pass
                text = line.decode("utf-8", errors="surrogateescape")
                fields = next(csv.reader([text]), [])
                if position < len(fields) and _has_surrogate(fields[position]):
                    return row, fields[position].encode("utf-8", "surrogateescape")
    except (OSError, EOFError, csv.Error):
        pass
    return None


def _has_surrogate(text: str) -> bool:
    return any("\udc80" <= character <= "\udcff" for character in text)


def _reopen(path: str | os.PathLike[str], name: str) -> BinaryIO:
    """Open a file again as bytes, decompressed when ``name`` ends in .gz."""
    if name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115


def _find_long_row(path: str | os.PathLike[str], name: str, limit: int) -> int | None:
    """Return the 1-based data row of the first line over ``limit`` bytes, or None.

    Error path only. Lines are read ``limit + 1`` bytes at most, so a long
    line is never held whole.
    """
    try:
        with _reopen(path, name) as handle:
            handle.readline(limit + 1)
            row = 0
            while line := handle.readline(limit + 1):
                row += 1
                if len(line) > limit:
                    return row
    except (OSError, EOFError):
        pass
    return None


def _find_csv_row(path: str | os.PathLike[str], name: str, text: str) -> int | None:
    """Return the 1-based data row whose raw text is ``text`` (error path only)."""
    opener: Callable[..., io.TextIOBase]
    if name.lower().endswith(".gz"):
        opener = gzip.open  # type: ignore[assignment]
    else:
        opener = open  # type: ignore[assignment]
    # The csv module rejects fields over 128 KiB (csv.field_size_limit),
    # which a broken row may have; the row is then left unnamed.
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            wanted = next(csv.reader([text]), None)
            for number, fields in enumerate(reader, start=1):
                if fields == wanted or (
                    header is not None and len(fields) != len(header)
                ):
                    return number
    except (csv.Error, UnicodeDecodeError, OSError, EOFError):
        pass
    return None


def _jsonl_blocks(
    stream: io.RawIOBase,
    name: str,
    mapping: Mapping[str, str],
    canonical: tuple[str, ...],
) -> Blocks:
    line = 1
    row = 1
    rest = b""
    checked = False
    schema: pa.Schema | None = None
    while True:
        chunk = stream.read(_BLOCK_BYTES)
        data = rest + (chunk or b"")
        if chunk:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
        else:
            rest = b""
        if data.startswith(b"\xef\xbb\xbf") and line == 1:
            data = data[3:]
        if data.strip():
            if schema is None:
                _check_no_nul(data, name, line)
                schema = _jsonl_schema(data, mapping)
            table = _parse_jsonl_chunk(data, name, line, schema)
            if not checked:
                validate.check_columns(table.column_names, name, mapping)
                checked = True
            wanted = [mapping[c] for c in canonical if mapping[c] in table.column_names]
            for batch in table.select(wanted).to_batches():
                _check_utf8(batch, name, row)
                yield batch, row
                row += batch.num_rows
        line += data.count(b"\n")
        if not chunk:
            break
    if not checked:
        raise InputContractError(
            f"{name}: the file has no JSON objects; expected one event object per "
            f"line with keys user_id, topic, event_type, timestamp",
            source=name,
        )


def _check_no_nul(head: bytes, name: str, first_line: int = 1) -> None:
    """Raise an input-contract error if the first non-blank line has NUL bytes.

    UTF-8 text has no NUL bytes, but UTF-16 and UTF-32 text of ASCII
    characters has one in every character. Python's JSON decoder would
    otherwise take such bytes for UTF-16 and fail with a bare
    UnicodeDecodeError.
    """
    start, number = 0, first_line
    while True:
        end = head.find(b"\n", start)
        line = head[start:] if end < 0 else head[start:end]
        if line.strip() or end < 0:
            break
        start, number = end + 1, number + 1
    if b"\x00" in line:
        raise InputContractError(
            f"{name}: line {number} has NUL bytes (it starts {line[:20]!r}), as "
            f"UTF-16 or UTF-32 text and binary files have; expected UTF-8 text; "
            f"re-export the file as UTF-8",
            source=name,
            row=number,
        )


def _check_utf8(batch: pa.RecordBatch, name: str, first_row: int) -> None:
    """Raise an input-contract error for the first string that is not UTF-8.

    pyarrow's JSON reader (version 26) copies string bytes without checking
    their encoding, so a non-UTF-8 file would otherwise fail later with a
    bare UnicodeDecodeError.
    """
    for key, array in zip(batch.schema.names, batch.columns, strict=True):
        if not pa.types.is_string(array.type):
            continue
        try:
            array.validate(full=True)
        except pa.ArrowInvalid as error:
            # The message ends "Invalid UTF8 sequence at string index N".
            found = re.search(r"UTF8 sequence at string index (\d+)", str(error))
            if found is None:
                raise
            index = int(found.group(1))
            row = first_row + index
            value = array.slice(index, 1).cast(pa.binary())[0].as_py()
            raise InputContractError(
                f"{name}: key {key!r} at data row {row}: expected UTF-8 text, found "
                f"{value[:100]!r}, which is not valid UTF-8; re-export the file as "
                f"UTF-8",
                source=name,
                row=row,
            ) from error


def _jsonl_schema(data: bytes, mapping: Mapping[str, str]) -> pa.Schema:
    """Return the types to force, from the first JSON object of the file.

    ISO-8601 times must stay strings: pyarrow would otherwise infer a
    timestamp type for some of them and leave others (with offsets) as text.
    """
    first = next((line for line in data.split(b"\n") if line.strip()), b"{}")
    try:
        # Decoded here, because json.loads would guess UTF-16 or UTF-32 for
        # some bytes; pyarrow reads only UTF-8.
        record = json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):
        # pyarrow's parse of the chunk reports the problem with its line.
        return pa.schema([])
    if isinstance(record, dict) and isinstance(record.get(mapping[TIMESTAMP]), str):
        return pa.schema([(mapping[TIMESTAMP], pa.string())])
    return pa.schema([])


def _parse_jsonl_chunk(
    data: bytes, name: str, first_line: int, schema: pa.Schema
) -> pa.Table:
    try:
        return pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(block_size=len(data) + 1),
            parse_options=pa_json.ParseOptions(explicit_schema=schema),
        )
    except pa.ArrowInvalid as error:
        line, problem = _find_jsonl_problem(data, first_line)
        where = f"line {line}" if line is not None else f"a line after {first_line}"
        raise InputContractError(
            f"{name}: {where} is not a valid JSON event object: {problem}; "
            f"write one JSON object per line, with the same type for each key on "
            f"every line",
            source=name,
            row=line,
        ) from error


_JSON_TYPE_NAMES = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    type(None): "null",
}


def _find_jsonl_problem(data: bytes, first_line: int) -> tuple[int | None, str]:
    """Locate the first malformed line, or the first key whose type changes."""
    seen: dict[str, str] = {}
    for number, text in enumerate(data.split(b"\n"), start=first_line):
        if not text.strip():
            continue
        try:
            record = json.loads(text.decode("utf-8"))
        except json.JSONDecodeError as error:
            return number, f"{error.msg} at column {error.colno}"
        except UnicodeDecodeError:
            return number, f"found {text[:100]!r}, which is not valid UTF-8 text"
        except RecursionError:
            return number, "the JSON value is nested too deeply"
        if not isinstance(record, dict):
            return number, f"found a JSON {_JSON_TYPE_NAMES.get(type(record), 'value')}"
        for key, value in record.items():
            kind = _JSON_TYPE_NAMES.get(type(value), "value")
            if kind == "null":
                continue
            if seen.setdefault(key, kind) != kind:
                shown = json.dumps(value)[:100]
                return (
                    number,
                    f"key {key!r} is a {kind} here ({shown}) but a {seen[key]} before",
                )
    return None, "pyarrow could not parse the chunk"
