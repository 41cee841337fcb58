"""Training data sources, each producing canonical behaviour events.

``load_source`` takes the ``--data`` value of the training CLI:

- ``simulated``: the default sample of the behaviour simulator;
- ``movielens``: ml-latest-small under the data folder, downloaded if absent;
- a folder with ratings.csv and movies.csv: a local MovieLens copy;
- any other folder, file or glob: canonical behaviour files (CSV, Parquet,
  JSON Lines, optionally gzip-compressed), read by the scoring stage's
  reader so that training and scoring accept the same files.

Every source returns a ``SourceData`` with a fingerprint of what it read,
which the bundle's manifest records.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from infer.errors import InputContractError
from infer.schema import ALL_COLUMNS

SIMULATED = "simulated"
MOVIELENS = "movielens"
FILES = "files"
# File name endings the canonical reader accepts.
BEHAVIOUR_SUFFIXES = (
    ".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz",
    ".parquet", ".pq",
)
_HASH_CHUNK_BYTES = 1 << 20


@dataclass
class SourceData:
    """Canonical events and a fingerprint of where they came from.

    ``source`` is ``"simulated"``, ``"movielens"`` or ``"files"``. ``files``
    has one dict per input, with keys ``name``, ``sha256`` and ``rows``
    (data rows read from it). For simulated data the single entry names the
    simulator settings and hashes the generated events.
    """

    events: pd.DataFrame
    source: str
    files: list[dict[str, Any]] = field(default_factory=list)


def file_fingerprint(path: Path, *, rows: int) -> dict[str, Any]:
    """Return ``{"name", "sha256", "rows"}`` for a file that was read."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return {"name": Path(path).name, "sha256": digest.hexdigest(), "rows": int(rows)}


def parse_column_mapping(text: str) -> dict[str, str]:
    """Parse ``--columns`` text such as ``userId=user_id,movieId=item_id``.

    Parameters
    ----------
    text:
        Comma-separated ``source=target`` pairs, where ``target`` is a
        canonical column name. Spaces around names are ignored.

    Returns
    -------
    dict[str, str]
        Source column name to canonical column name; empty for empty text.

    Raises
    ------
    ValueError
        If a pair has no ``=`` or an empty side, a target is not a canonical
        column, or a source or target appears twice.
    """
    mapping: dict[str, str] = {}
    if not text.strip():
        return mapping
    for pair in text.split(","):
        source, sep, target = (part.strip() for part in pair.partition("="))
        if not sep or not source or not target:
            raise ValueError(
                f"invalid column mapping {pair.strip()!r}: expected "
                f"source=target, for example userId=user_id"
            )
        if target not in ALL_COLUMNS:
            raise ValueError(
                f"invalid column mapping {pair.strip()!r}: unknown target column "
                f"{target!r}, expected one of {', '.join(ALL_COLUMNS)}"
            )
        if source in mapping:
            raise ValueError(
                f"invalid column mapping: source column {source!r} is mapped twice"
            )
        if target in mapping.values():
            raise ValueError(
                f"invalid column mapping: target column {target!r} is mapped twice"
            )
        mapping[source] = target
    return mapping


def load_source(
    spec: str,
    *,
    columns: dict[str, str] | None = None,
    data_dir: Path = Path("data"),
) -> SourceData:
    """Load the training events that ``spec`` names.

    Parameters
    ----------
    spec:
        ``"simulated"``, ``"movielens"``, a MovieLens folder (with
        ratings.csv and movies.csv), or canonical behaviour files: a file,
        a folder of them or a glob.
    columns:
        Column mapping for canonical behaviour files (source name to
        canonical name); rejected for the other sources.
    data_dir:
        Where ``"movielens"`` looks for ``ml-latest-small/`` and downloads
        it to when it is absent.

    Returns
    -------
    SourceData
        The canonical events, the source name and the file fingerprints.

    Raises
    ------
    InputContractError
        If the files break the input contract or match nothing.
    ValueError
        If a column mapping is given for a source that does not take one.
    """
    # Imported here because train.movielens and train.simulate import
    # SourceData from this module.
    from train import movielens, simulate

    path = Path(spec)
    if spec == SIMULATED:
        _reject_columns(columns, spec)
        return simulate.load_simulated(simulate.DEFAULT_SAMPLE)
    if spec == MOVIELENS and not path.exists():
        _reject_columns(columns, spec)
        return movielens.load_movielens(movielens.ensure_movielens(data_dir))
    if path.is_dir() and movielens.is_movielens_folder(path):
        _reject_columns(columns, "a MovieLens folder")
        return movielens.load_movielens(path)
    return _load_files(spec, columns)


def _reject_columns(columns: dict[str, str] | None, what: str) -> None:
    if columns:
        raise ValueError(
            f"a column mapping applies to behaviour files only, not to {what}; "
            f"drop --columns"
        )


def _load_files(spec: str, columns: dict[str, str] | None) -> SourceData:
    from infer.reader import read_events

    paths = behaviour_files(spec)
    results = [read_events(path, columns=columns) for path in paths]
    events = pd.concat([result.events for result in results], ignore_index=True)
    files = [
        file_fingerprint(Path(item["path"]), rows=item["rows"])
        for result in results
        for item in result.files
    ]
    return SourceData(events=events, source=FILES, files=files)


def behaviour_files(spec: str) -> list[Path]:
    """Return the behaviour files that a file, folder or glob names, sorted.

    A folder contributes its files (not subfolders) whose names end in a
    supported suffix; names starting with "." are skipped.

    Raises
    ------
    InputContractError
        If the file does not exist or the folder or glob matches no file.
    """
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".")
                       and p.name.lower().endswith(BEHAVIOUR_SUFFIXES))
        where = f"folder {spec}"
    elif any(char in spec for char in "*?["):
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True)
                       if Path(p).is_file())
        where = f"glob {spec!r}"
    else:
        raise InputContractError(
            f"training data {spec!r} not found; expected 'simulated', 'movielens', "
            f"a MovieLens folder, or behaviour files (a file, folder or glob)",
            source=spec,
        )
    if not found:
        raise InputContractError(
            f"no behaviour files in {where}; expected names ending in "
            f"{', '.join(BEHAVIOUR_SUFFIXES)}",
            source=spec,
        )
    return found
