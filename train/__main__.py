"""Command line of the training stage.

python -m train fit --data SPEC --out DIR [--columns ...] [--epochs N] [--seed N]
python -m train simulate --out FILE [--users N] [--days N] ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from infer.errors import InterestDecayError

# TensorFlow logs CPU-feature notes at import; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Exit code of a user mistake: invalid options, or data that cannot train.
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m train``."""
    from train import simulate
    from train.config import ModelSettings

    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the interest model and export an ONNX bundle, or "
        "simulate behaviour events.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser(
        "fit",
        help="train, evaluate and export a model bundle",
        description="Train on behaviour events, compare with the baselines on the "
        "test split, export ONNX and write a bundle folder.",
    )
    fit.add_argument(
        "--data",
        default="simulated",
        help="'simulated' (default), 'movielens', a MovieLens folder, or "
        "behaviour files: a file, a folder or a glob",
    )
    fit.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts"),
        help="folder that receives the bundle and the 'latest' link "
        "(default artifacts)",
    )
    fit.add_argument(
        "--columns",
        default="",
        help="column mapping for behaviour files, for example "
        "userId=user_id,genre=topic,ts=timestamp",
    )
    fit.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="where 'movielens' looks for ml-latest-small/ and "
        "downloads it to (default data)",
    )
    fit.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"maximum training epochs (default {ModelSettings.max_epochs})",
    )
    fit.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"seed of weights and shuffling (default {ModelSettings.seed})",
    )
    fit.add_argument(
        "--lookback-days",
        type=float,
        default=None,
        help="history window L in days (default per source)",
    )
    fit.add_argument(
        "--horizon-days",
        type=float,
        default=None,
        help="label window H in days (default per source)",
    )
    fit.add_argument(
        "--stride-days",
        type=float,
        default=None,
        help="days between cutoffs (default per source)",
    )
    fit.add_argument(
        "--quiet",
        action="store_true",
        help="hide the progress bar and Keras' epoch lines",
    )

    simulate_parser = commands.add_parser(
        "simulate",
        help="write a simulated behaviour file",
        description="Simulate behaviour events whose interest fades "
        "non-exponentially, in the canonical schema.",
    )
    simulate.add_arguments(simulate_parser)
    return parser


def run_fit(args: argparse.Namespace) -> int:
    """Train and publish a bundle; print the metrics table and the bundle path."""
    from train.config import defaults_for, with_overrides
    from train.pipeline import TrainingDataError, train_bundle
    from train.report import metrics_table, verdict
    from train.sources import load_source, parse_column_mapping

    started = time.monotonic()
    # ValueError here comes from the validation of the options and data.
    try:
        columns = parse_column_mapping(args.columns)
        data = load_source(args.data, columns=columns or None, data_dir=args.data_dir)
        settings = with_overrides(
            defaults_for(data.source),
            lookback_days=args.lookback_days,
            horizon_days=args.horizon_days,
            stride_days=args.stride_days,
            max_epochs=args.epochs,
            seed=args.seed,
        )
    except (InterestDecayError, FileNotFoundError, ValueError) as error:
        return _usage_error(error)
    print(f"loaded {len(data.events):,} events from {args.data} ({data.source})")
    try:
        run = train_bundle(
            data,
            settings,
            args.out,
            verbose=0 if args.quiet else 2,
            progress=not args.quiet,
        )
    except (TrainingDataError, InterestDecayError, FileExistsError) as error:
        return _usage_error(error)
    test = run.manifest["metrics"]["test"]
    print()
    print(metrics_table(test))
    print(verdict(test))
    print(
        f"ONNX parity max |Keras - onnxruntime|: "
        f"{run.manifest['onnx']['parity_max_abs_diff']:.3g}"
    )
    print(f"finished in {time.monotonic() - started:.1f} s")
    print(f"bundle: {run.bundle}")
    return 0


def _usage_error(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m train``; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "simulate":
        from train import simulate

        return simulate.run(args)
    return run_fit(args)


if __name__ == "__main__":
    sys.exit(main())
