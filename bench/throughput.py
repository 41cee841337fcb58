"""End-to-end scoring throughput, peak memory and the time per phase.

Every run is a fresh process (``bench.worker score``) that loads the bundle
and then calls ``infer.scorer.score_file``, the code path of ``python -m
infer score``; throughput counts the read, features, inference, ranking and
write, but not the imports or the bundle load, which the cold-start section
measures. The S3 runs call ``infer.handler.lambda_handler`` against moto's
S3 server on 127.0.0.1, so they add the HTTP transfer through a local
Python server, not the network of a real region.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import BenchError, run_child, summarize
from bench.data import FORMATS

PHASES = ("read", "features", "inference", "write")
S3_BUCKET = "bench-scoring"
S3_REGION = "us-east-1"
# Fake credentials, and no profile or instance metadata lookup, so that a
# benchmark can only ever reach the loopback server it started.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": S3_REGION,
    "AWS_REGION": S3_REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
S3_UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "MODEL_URI")


def repeats_for(size: int, repeats: int) -> int:
    """Return the repeats of one file: fewer for files of 5 M events or more."""
    return max(1, repeats - 2) if size >= 5_000_000 else repeats


def run(
    files: dict[int, dict],
    model: Path,
    work_dir: Path,
    *,
    repeats: int,
    s3: bool = True,
    profile: bool = True,
) -> dict[str, Any]:
    """Measure every size and format locally, the CSV floor, S3 and a profile.

    Parameters
    ----------
    files:
        ``bench.data.prepare`` output: paths and rows per size.
    model:
        The bundle folder.
    work_dir:
        Where score outputs and profiles go.
    repeats:
        Runs per file (see ``repeats_for``).
    s3:
        Also score the CSV of each size through the handler and moto.
    profile:
        Profile the largest CSV once with pyinstrument.

    Returns
    -------
    dict
        ``local`` per size and format, ``csv_floor`` per size, ``s3`` per
        size and ``profile``, each figure with min, median and max.
    """
    results: dict[str, Any] = {
        "local": {},
        "csv_floor": {},
        "csv_floor_reader_types": {},
        "s3": {},
    }
    out_dir = work_dir / "scores"
    for size, info in files.items():
        n = repeats_for(size, repeats)
        for fmt in FORMATS:
            path = Path(info["files"][fmt]["path"])
            print(f"  score {path.name} x{n}")
            runs = [
                run_child(
                    [
                        "score",
                        str(path),
                        "--model",
                        str(model),
                        "--out",
                        str(out_dir / f"{path.name}.parquet"),
                    ]
                )
                for _ in range(n)
            ]
            results["local"].setdefault(str(size), {})[fmt] = _local_figures(runs)
        csv_path = info["files"]["csv"]["path"]
        print(f"  pyarrow.csv.read_csv events-{size}.csv x{n}")
        floor = [run_child(["csv-floor", csv_path]) for _ in range(n)]
        results["csv_floor"][str(size)] = _floor_figures(floor)
        floor = [run_child(["csv-floor", csv_path, "--as-reader"]) for _ in range(n)]
        results["csv_floor_reader_types"][str(size)] = _floor_figures(floor)
    if s3:
        results["s3"] = _run_s3(files, model, repeats)
    if profile:
        largest = max(files)
        results["profile"] = _profile(files[largest], largest, model, work_dir)
    return results


def _local_figures(runs: Sequence[Any]) -> dict[str, Any]:
    rows = runs[0].result["rows"]
    seconds = [r.result["seconds"] for r in runs]
    phases = {
        phase: summarize([r.result["phase_seconds"].get(phase, 0.0) for r in runs])
        for phase in PHASES
    }
    other = [
        r.result["seconds"] - sum(r.result["phase_seconds"].values()) for r in runs
    ]
    phases["rank_and_other"] = summarize(other)
    median_total = summarize(seconds)["median"]
    return {
        "rows": rows,
        "users": runs[0].result["users"],
        "candidates": runs[0].result["candidates"],
        "seconds": summarize(seconds),
        "events_per_second": summarize([rows / s for s in seconds]),
        "peak_rss_bytes": summarize([r.peak_rss_bytes for r in runs]),
        "rss_after_bundle_load_bytes": summarize(
            [r.result["rss_ready_bytes"] for r in runs]
        ),
        "phase_seconds": phases,
        "phase_share_of_median": {
            phase: figure["median"] / median_total for phase, figure in phases.items()
        },
    }


def _floor_figures(runs: Sequence[Any]) -> dict[str, Any]:
    rows = runs[0].result["rows"]
    seconds = [r.result["seconds"] for r in runs]
    return {
        "rows": rows,
        "seconds": summarize(seconds),
        "events_per_second": summarize([rows / s for s in seconds]),
        "peak_rss_bytes": summarize([r.peak_rss_bytes for r in runs]),
    }


def _run_s3(files: dict[int, dict], model: Path, repeats: int) -> dict[str, Any]:
    import boto3

    results: dict[str, Any] = {}
    with _moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name=S3_REGION)
        client.create_bucket(Bucket=S3_BUCKET)
        for size, info in files.items():
            path = Path(info["files"]["csv"]["path"])
            key = f"incoming/{path.name}"
            client.upload_file(str(path), S3_BUCKET, key)
            n = repeats_for(size, repeats)
            print(f"  score s3://{S3_BUCKET}/{key} through the handler x{n}")
            runs = []
            for _ in range(n):
                # The handler skips an input whose scores already exist.
                client.delete_object(
                    Bucket=S3_BUCKET, Key=f"scores/{path.name}.parquet"
                )
                runs.append(
                    run_child(
                        [
                            "score-s3",
                            S3_BUCKET,
                            key,
                            "--size",
                            str(path.stat().st_size),
                            "--model",
                            str(model),
                        ]
                    )
                )
            client.delete_object(Bucket=S3_BUCKET, Key=key)
            rows = runs[0].result["rows"]
            seconds = [r.result["seconds"] for r in runs]
            results[str(size)] = {
                "format": "csv",
                "rows": rows,
                "seconds": summarize(seconds),
                "events_per_second": summarize([rows / s for s in seconds]),
                "peak_rss_bytes": summarize([r.peak_rss_bytes for r in runs]),
            }
    return results


@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    """Run moto's S3 server on a free loopback port; point boto3 at it."""
    from moto.server import ThreadedMotoServer

    # The server's request log would bury the benchmark's own lines.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    names = (*S3_ENV, *S3_UNSET, "AWS_ENDPOINT_URL_S3")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(S3_ENV)
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    for name in S3_UNSET:
        os.environ.pop(name, None)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _profile(info: dict, size: int, model: Path, work_dir: Path) -> dict[str, Any]:
    path = Path(info["files"]["csv"]["path"])
    prefix = work_dir / "profile" / f"score-{path.name}"
    print(f"  profile {path.name} with pyinstrument")
    run_child(
        [
            "score",
            str(path),
            "--model",
            str(model),
            "--out",
            str(work_dir / "scores" / f"{path.name}.parquet"),
            "--profile",
            str(prefix),
        ]
    )
    try:
        flat = json.loads(prefix.with_suffix(".json").read_text(encoding="utf-8"))
        tree = prefix.with_suffix(".txt").read_text(encoding="utf-8")
    except OSError as error:
        raise BenchError(f"profile of {path.name} was not written: {error}") from error
    return {
        "file": path.name,
        "rows": info["rows"],
        "duration_seconds": flat["duration"],
        "top_self_time": flat["top_self_time"],
        "tree": tree,
    }
