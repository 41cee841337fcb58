"""Write score tables as Parquet, CSV or JSON Lines.

A path destination is written to a temporary file in the same folder and
renamed over the final name only when the write succeeded, so a failed
run never leaves a partial output file. A path ending in ``.gz`` is
gzip-compressed, which only the text formats (CSV, JSON Lines) allow. A
stream destination (for example an in-memory buffer for an S3 upload) is
written directly.
"""

from __future__ import annotations

import gzip
import io
import os
import uuid
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}
GZIP_SUFFIX = ".gz"
# Formats that may be gzip-compressed; Parquet compresses its own pages.
GZIP_FORMATS = ("csv", "jsonl")
# Every output name suffix that implies a format, for messages.
KNOWN_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson")
# Rows per JSON Lines write, which bounds the size of the encoded text held
# in memory at once.
_JSONL_ROWS = 100_000


def format_from_name(name: str | os.PathLike[str]) -> str | None:
    """Return the output format a file name implies, or None if it implies none.

    ``.csv.gz`` and ``.jsonl.gz`` imply ``csv`` and ``jsonl`` (gzip is
    taken from the name when writing); ``.parquet.gz`` implies none.
    """
    path = Path(name)
    suffix = path.suffix.lower()
    compressed = suffix == GZIP_SUFFIX
    if compressed:
        suffix = path.with_suffix("").suffix.lower()
    if suffix == ".ndjson":
        suffix = EXTENSIONS["jsonl"]
    for fmt, extension in EXTENSIONS.items():
        if suffix == extension and (fmt in GZIP_FORMATS or not compressed):
            return fmt
    return None


def is_gzip_name(name: str | os.PathLike[str]) -> bool:
    """Return whether an output name ends in ``.gz`` (written gzip-compressed)."""
    return str(name).lower().endswith(GZIP_SUFFIX)


def write_scores(
    scores: pd.DataFrame,
    destination: str | os.PathLike[str] | BinaryIO,
    fmt: str = "parquet",
) -> None:
    """Write a score table.

    Parameters
    ----------
    scores:
        The table to write, usually ``ScoreResult.scores``.
    destination:
        A file path or a binary stream open for writing. A path is written
        atomically (temporary file, then rename) after its parent folder is
        created, and gzip-compressed when its name ends in ``.gz``.
    fmt:
        ``"parquet"``, ``"csv"`` or ``"jsonl"``.

    Raises
    ------
    ValueError
        If ``fmt`` is not a supported format, or the path ends in ``.gz``
        and ``fmt`` is ``"parquet"``.
    OSError
        If the file cannot be written; no partial file is left behind.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(
            f"invalid output format {fmt!r}; expected one of {list(OUTPUT_FORMATS)}"
        )
    if not isinstance(destination, str | os.PathLike):
        _write(scores, destination, fmt)
        return

    final = Path(destination)
    compress = is_gzip_name(final)
    if compress and fmt not in GZIP_FORMATS:
        raise ValueError(
            f"cannot write {final}: {fmt} output cannot be gzip-compressed; "
            f"drop .gz from the name, or write one of {list(GZIP_FORMATS)}"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary, "wb") as handle:
            if compress:
                # mtime=0 and the final name keep the bytes independent of
                # when and through which temporary name they were written.
                with gzip.GzipFile(
                    filename=final.name[: -len(GZIP_SUFFIX)],
                    mode="wb",
                    fileobj=handle,
                    mtime=0,
                ) as packed:
                    _write(scores, packed, fmt)  # type: ignore[arg-type]
            else:
                _write(scores, handle, fmt)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def _write(scores: pd.DataFrame, sink: BinaryIO, fmt: str) -> None:
    if fmt == "jsonl":
        _write_jsonl(scores, sink)
        return
    table = pa.Table.from_pandas(scores, preserve_index=False)
    if fmt == "parquet":
        pq.write_table(table, sink)
        return
    # The CSV writer has no support for dictionary columns.
    plain = pa.table(
        [
            column.cast(column.type.value_type)
            if pa.types.is_dictionary(column.type)
            else column
            for column in table.columns
        ],
        names=table.column_names,
    )
    pa_csv.write_csv(plain, sink)


def _write_jsonl(scores: pd.DataFrame, sink: BinaryIO) -> None:
    text = io.TextIOWrapper(sink, encoding="utf-8", newline="\n", write_through=True)
    try:
        for start in range(0, len(scores), _JSONL_ROWS):
            part = scores.iloc[start : start + _JSONL_ROWS]
            # pandas ends the text with a newline after the last record.
            text.write(part.to_json(orient="records", lines=True, force_ascii=False))
        text.flush()
    finally:
        # Detach so that closing the wrapper does not close the caller's sink.
        text.detach()
