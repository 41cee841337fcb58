"""Measurements that run in a fresh child process, one per invocation.

``python -m bench.worker COMMAND ...`` runs one measurement and prints its
result as one JSON line (see ``bench.common.print_result``). A fresh
process per measurement gives each one its own peak RSS and keeps caches
of earlier runs out of it.

Commands:

- ``score FILE --model DIR --out FILE [--profile PREFIX]``: the local path
  of the scorer, ``infer.scorer.score_file``;
- ``score-s3 BUCKET KEY --model DIR``: the cloud function,
  ``infer.handler.lambda_handler``, on an S3 put event;
- ``csv-floor FILE [--as-reader]``: ``pyarrow.csv.read_csv`` of the file alone;
- ``inference FILE --model DIR --repeats N --keras-default-repeats N``:
  onnxruntime against Keras and ``tf.function`` on one feature matrix.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import peak_rss_self, print_result, rss_self


def score(args: argparse.Namespace) -> dict[str, Any]:
    """Score one local file with ``score_file``, as ``python -m infer score`` does."""
    started = time.perf_counter()
    from infer.bundle import load_bundle
    from infer.scorer import score_file

    imported = time.perf_counter() - started
    bundle = load_bundle(args.model)
    rss_ready = rss_self()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    summary = score_file(Path(args.file), bundle, out=Path(args.out))
    if profiler is not None:
        profiler.stop()
        _write_profile(profiler, Path(args.profile))
    return {
        "rows": summary.rows,
        "users": summary.users,
        "candidates": summary.candidates,
        "seconds": summary.seconds,
        "phase_seconds": summary.phase_seconds,
        "import_seconds": imported,
        "load_seconds": bundle.load_seconds,
        "rss_ready_bytes": rss_ready,
        "peak_rss_bytes": peak_rss_self(),
    }


def _write_profile(profiler: Any, prefix: Path) -> None:
    """Write the pyinstrument tree as text and HTML, and the top self times."""
    import json

    prefix.parent.mkdir(parents=True, exist_ok=True)
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    prefix.with_suffix(".txt").write_text(text, encoding="utf-8")
    prefix.with_suffix(".html").write_text(profiler.output_html(), encoding="utf-8")
    session = profiler.last_session
    totals: dict[str, float] = {}
    _self_times(session.root_frame(), totals)
    total = session.duration
    top = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:15]
    flat = [
        {"function": name, "self_seconds": seconds, "share": seconds / total}
        for name, seconds in top
    ]
    prefix.with_suffix(".json").write_text(
        json.dumps({"duration": total, "top_self_time": flat}, indent=2) + "\n",
        encoding="utf-8",
    )


def _self_times(frame: Any, totals: dict[str, float]) -> None:
    """Add each function's own time; pyinstrument keeps it in synthetic children."""
    if frame is None:
        return
    children = list(frame.children)
    own = frame.time - sum(child.time for child in children)
    own += sum(child.time for child in children if child.is_synthetic_leaf)
    if own > 0:
        where = f"{Path(frame.file_path or '?').name}:{frame.function}"
        totals[where] = totals.get(where, 0.0) + own
    for child in children:
        if not child.is_synthetic_leaf:
            _self_times(child, totals)


def score_s3(args: argparse.Namespace) -> dict[str, Any]:
    """Score one S3 object with the Lambda handler, as a warm container does.

    The bundle is loaded before the clock starts, so the figure is the
    per-file cost; cold start is measured on its own.
    """
    import os

    os.environ["MODEL_URI"] = str(args.model)
    from infer import handler
    from infer.settings import Settings

    handler.get_bundle(Settings.from_env(), handler.s3_client())
    rss_ready = rss_self()
    event = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": args.bucket},
                    "object": {"key": args.key, "size": args.size},
                },
            }
        ]
    }
    started = time.perf_counter()
    response = handler.lambda_handler(event, None)
    seconds = time.perf_counter() - started
    record = response["records"][0]
    if record["outcome"] != handler.SCORED:
        raise SystemExit(f"expected outcome 'scored', got {record!r}")
    return {
        "rows": record["rows"],
        "users": record["users"],
        "candidates": record["candidates"],
        "seconds": seconds,
        "rss_ready_bytes": rss_ready,
        "peak_rss_bytes": peak_rss_self(),
    }


def csv_floor(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``pyarrow.csv.read_csv`` of the file alone.

    By default pyarrow infers the column types. With ``--as-reader`` the
    columns get the types the scorer's reader asks for: dictionary-encoded
    ids, and text for the timestamp and value, which it checks later.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    convert = None
    if args.as_reader:
        text = {"timestamp": pa.string(), "value": pa.string()}
        ids = ("user_id", "topic", "event_type", "item_id")
        dictionary = {name: pa.dictionary(pa.int32(), pa.string()) for name in ids}
        convert = pa_csv.ConvertOptions(column_types=text | dictionary)
    started = time.perf_counter()
    table = pa_csv.read_csv(args.file, convert_options=convert)
    seconds = time.perf_counter() - started
    return {
        "rows": table.num_rows,
        "seconds": seconds,
        "peak_rss_bytes": peak_rss_self(),
    }


def inference(args: argparse.Namespace) -> dict[str, Any]:
    """Time onnxruntime, Keras predict and tf.function on one feature matrix.

    Each repeat runs every method once, in the same order, so that each
    ratio compares runs made seconds apart under the same machine load.
    """
    from infer.bundle import load_bundle
    from infer.features import build_features
    from infer.reader import read_events

    bundle = load_bundle(args.model)
    events = read_events(Path(args.file)).events
    as_of = int(events["timestamp"].max())
    values = build_features(events, as_of, bundle.feature_config).values
    del events

    import keras
    import tensorflow as tf

    model = keras.saving.load_model(Path(args.model) / "model.keras")
    graph = tf.function(lambda x: model(x, training=False))

    methods: dict[str, Callable[[], Any]] = {
        "onnxruntime": lambda: bundle.predict(values),
        "keras_predict_default": lambda: model.predict(values, verbose=0),
        "keras_predict_8192": lambda: model.predict(values, batch_size=8192, verbose=0),
        "tf_function": lambda: graph(tf.convert_to_tensor(values)).numpy(),
    }
    # Warm-up: graph tracing and first-call allocations are not per-row
    # costs. Keras' default predict warms up on a slice (its trace does not
    # depend on the number of rows), because a full run takes seconds.
    bundle.predict(values)
    model.predict(values[:1024], verbose=0)
    model.predict(values[: 8192 * 2], batch_size=8192, verbose=0)
    graph(tf.convert_to_tensor(values)).numpy()

    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        for name, run in methods.items():
            if name == "keras_predict_default" and repeat >= args.keras_default_repeats:
                continue
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {
        "rows": int(values.shape[0]),
        "features": int(values.shape[1]),
        "seconds": seconds,
        "ort_threads": bundle.threads,
        "peak_rss_bytes": peak_rss_self(),
        "tensorflow_threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m bench.worker``."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("score", help="score a local file with score_file")
    run.add_argument("file")
    run.add_argument("--model", required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--profile", help="write a pyinstrument profile to PREFIX.*")
    run.set_defaults(handler=score)

    run = commands.add_parser("score-s3", help="score an S3 object via the handler")
    run.add_argument("bucket")
    run.add_argument("key")
    run.add_argument("--size", type=int, required=True)
    run.add_argument("--model", required=True)
    run.set_defaults(handler=score_s3)

    run = commands.add_parser("csv-floor", help="time pyarrow.csv.read_csv alone")
    run.add_argument("file")
    run.add_argument(
        "--as-reader", action="store_true", help="use the reader's column types"
    )
    run.set_defaults(handler=csv_floor)

    run = commands.add_parser("inference", help="onnxruntime against Keras")
    run.add_argument("file")
    run.add_argument("--model", required=True)
    run.add_argument("--repeats", type=int, default=3)
    run.add_argument("--keras-default-repeats", type=int, default=1)
    run.set_defaults(handler=inference)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one worker command and print its result line."""
    args = build_parser().parse_args(argv)
    print_result(args.handler(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
