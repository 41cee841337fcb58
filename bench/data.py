"""Simulated behaviour files of a given size, kept under the work folder.

The events come from ``train.simulate`` with its default settings and only
the number of users changed, so the files look like the training sample:
20 topics, four event types, 240 days. Each size is simulated once, written
as Parquet, and converted to CSV and gzip CSV; later runs reuse the files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from train.simulate import DEFAULT_SAMPLE, iter_event_chunks, write_events

FORMATS = ("csv", "csv.gz", "parquet")
# Events per simulated user with the default settings (240 days): a pilot
# of 1,000 users gave 1,003,672 events for 1,040 users.
EVENTS_PER_USER = 965.0


def data_dir(work_dir: Path) -> Path:
    """Return the folder of the generated behaviour files."""
    return work_dir / "data"


def file_path(work_dir: Path, size: int, fmt: str) -> Path:
    """Return the path of the behaviour file of ``size`` events in ``fmt``."""
    return data_dir(work_dir) / f"events-{size}.{fmt}"


def prepare(work_dir: Path, sizes: Sequence[int], log: bool = True) -> dict[int, dict]:
    """Write the files of every size and format that do not exist yet.

    Returns
    -------
    dict
        Per size: ``rows`` (events actually written), ``users``, the
        seconds the simulation took and the path and bytes of each format.
    """
    described: dict[int, dict] = {}
    for size in sizes:
        described[size] = _prepare_size(work_dir, size, log)
    return described


def _prepare_size(work_dir: Path, size: int, log: bool) -> dict:
    info_path = data_dir(work_dir) / f"events-{size}.json"
    paths = {fmt: file_path(work_dir, size, fmt) for fmt in FORMATS}
    if info_path.is_file() and all(path.is_file() for path in paths.values()):
        info = json.loads(info_path.read_text(encoding="utf-8"))
    else:
        info = _simulate(size, paths, log)
        info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    info["files"] = {
        fmt: {"path": str(path), "bytes": path.stat().st_size}
        for fmt, path in paths.items()
    }
    return info


def _simulate(size: int, paths: dict[str, Path], log: bool) -> dict:
    users = max(1, math.ceil(size / EVENTS_PER_USER))
    config = replace(DEFAULT_SAMPLE, users=users)
    started = time.perf_counter()
    rows = write_events(iter_event_chunks(config), paths["parquet"])
    simulated = time.perf_counter() - started
    if log:
        print(f"  simulated {rows:,} events of {users:,} users in {simulated:.1f} s")
    for fmt in ("csv", "csv.gz"):
        started = time.perf_counter()
        write_events(_parquet_frames(paths["parquet"]), paths[fmt])
        if log:
            print(f"  wrote {paths[fmt].name} in {time.perf_counter() - started:.1f} s")
    return {
        "rows": rows,
        "users": users,
        "simulation_seconds": simulated,
        "simulation": config.describe(),
    }


def _parquet_frames(path: Path) -> Iterator[pd.DataFrame]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 20):
        yield batch.to_pandas()
