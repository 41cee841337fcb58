"""Command line of the scoring stage: ``python -m infer <command>``.

Each subcommand lives in an ``add_<name>_command(subparsers)`` function
that adds its parser and sets ``handler`` to a function taking the parsed
arguments and returning the exit code. To add a subcommand, write such a
function and append it to ``COMMANDS``.

``score`` reads behaviour files, folders or globs, scores each file with
one bundle, and prints one summary line per file. A file that breaks the
input contract is reported and skipped, and the exit code is 1 when any
file failed.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from infer.bundle import Bundle, load_bundle
from infer.errors import InterestDecayError
from infer.output import EXTENSIONS, OUTPUT_FORMATS, format_from_name, write_scores
from infer.reader import detect_format
from infer.schema import ALL_COLUMNS
from infer.scorer import FileSummary, score_file
from infer.watch import add_watch_command

EXIT_OK = 0
EXIT_FILE_FAILED = 1
EXIT_USAGE = 2


def parse_as_of(text: str) -> int:
    """Parse ``--as-of``: epoch seconds, or ISO-8601 (no offset means UTC).

    Raises
    ------
    argparse.ArgumentTypeError
        If the text is neither.
    """
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"invalid --as-of {text!r}; expected epoch seconds such as 1718000000 or "
            f"an ISO-8601 time such as 2024-06-10T06:13:20Z"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return number


def _column_pair(text: str) -> tuple[str, str]:
    in_file, sep, canonical = (part.strip() for part in text.partition("="))
    if not sep or canonical not in ALL_COLUMNS or not in_file:
        raise argparse.ArgumentTypeError(
            f"invalid --column {text!r}; expected FILE_COLUMN=CANONICAL with "
            f"CANONICAL one of {', '.join(ALL_COLUMNS)}, for example genre=topic"
        )
    return in_file, canonical


def add_score_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score`` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="score behaviour files with a model bundle",
        description=(
            "Score behaviour files (CSV, Parquet, JSON Lines, optionally .gz) with "
            "a model bundle and write one row per (user, topic) pair: user_id, "
            "topic, interest, rank, as_of, model_version. A file that breaks the "
            "input contract is reported and skipped; the exit code is 1 when any "
            "file failed, 2 for invalid arguments or an invalid bundle."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="behaviour files, folders (all supported files inside, recursively) "
        "or glob patterns such as 'data/*.csv.gz'",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="model bundle folder, for example artifacts/latest",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="output file for all scores; or a folder (existing, or given with a "
        "trailing /) to write one output file per input, named like the input "
        "plus the format suffix (events.csv.gz -> events.csv.gz.parquet)",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="output format (default: from the --out suffix, else parquet)",
    )
    parser.add_argument(
        "--as-of",
        type=parse_as_of,
        default=None,
        metavar="TIME",
        help="reference time, epoch seconds or ISO-8601 (no offset means UTC); "
        "default: the latest event time of each file",
    )
    parser.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        metavar="K",
        help="keep only the K highest-ranked topics of each user (default: all)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="onnxruntime intra-op threads (default: the CPUs this process may run on)",
    )
    parser.add_argument(
        "--column",
        type=_column_pair,
        action="append",
        default=[],
        metavar="FILE_COLUMN=CANONICAL",
        help="column mapping, repeatable: read the file's FILE_COLUMN as the "
        "canonical column, for example --column userId=user_id",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="hide the progress bar (it is hidden anyway when stderr is not a "
        "terminal)",
    )
    parser.set_defaults(handler=run_score)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_score_command,
    add_watch_command,
]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand in ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="python -m infer",
        description="Score behaviour files with an interest-decay model bundle.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def expand_inputs(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs into behaviour files.

    Returns
    -------
    tuple[list[Path], list[str]]
        The files in argument order (folders and globs sorted, duplicates
        removed) and the arguments that matched no file.
    """
    files: list[Path] = []
    unmatched: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _supported(p))
        elif path.exists():
            found = [path]
        else:
            found = sorted(
                Path(p)
                for p in glob.glob(pattern, recursive=True)
                if Path(p).is_file() and _supported(Path(p))
            )
        if not found:
            unmatched.append(pattern)
        files += [p for p in found if p not in files]
    return files, unmatched


def _supported(path: Path) -> bool:
    try:
        detect_format(path.name)
    except InterestDecayError:
        return False
    return True


def run_score(args: argparse.Namespace) -> int:
    """Run ``score``; return 0, 1 when any file failed, 2 on usage errors."""
    files, unmatched = expand_inputs(args.inputs)
    for pattern in unmatched:
        print(
            f"{pattern}: no behaviour file found (file, folder or glob)",
            file=sys.stderr,
        )
    if not files:
        print("error: no input files to score", file=sys.stderr)
        return EXIT_USAGE

    out = Path(args.out)
    per_file = out.is_dir() or str(args.out).endswith(("/", os.sep))
    fmt = args.format or format_from_name(out) or "parquet"
    targets: dict[Path, Path] = {}
    if per_file:
        for path in files:
            target = out / f"{path.name}{EXTENSIONS[fmt]}"
            if target in targets.values():
                print(
                    f"error: two inputs would write {target}; score them into "
                    f"different folders or rename one",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            targets[path] = target

    try:
        bundle = load_bundle(args.model, threads=args.threads)
    except InterestDecayError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    columns = dict(args.column)
    summaries: list[FileSummary] = []
    collected: list[pd.DataFrame] = []
    progress = tqdm(files, unit="file", disable=True if args.no_progress else None)
    for path in progress:
        destination: Path | None
        if per_file:
            destination = targets[path]
        elif len(files) == 1:
            destination = out
        else:
            destination = None
        summary = _score_one(path, bundle, destination, fmt, args, columns)
        if summary.scores is not None:
            collected.append(summary.scores)
            summary.scores = None
        summaries.append(summary)
        tqdm.write(summary.line())

    if collected:
        write_scores(pd.concat(collected, ignore_index=True), out, fmt)
    failed = sum(summary.outcome != "ok" for summary in summaries)
    if failed == len(summaries):
        written = "none"
    else:
        written = f"{out}{os.sep}" if per_file else str(out)
    print(
        f"scored {len(summaries) - failed} of {len(summaries)} file(s) with model "
        f"{bundle.model_version}; output: {written}",
        file=sys.stderr,
    )
    return EXIT_FILE_FAILED if failed else EXIT_OK


def _score_one(
    path: Path,
    bundle: Bundle,
    destination: Path | None,
    fmt: str,
    args: argparse.Namespace,
    columns: dict[str, str],
) -> FileSummary:
    started = time.perf_counter()
    try:
        return score_file(
            path,
            bundle,
            out=destination,
            fmt=fmt,
            as_of=args.as_of,
            top_k=args.top_k,
            columns=columns,
        )
    except (InterestDecayError, OSError) as error:
        return FileSummary(
            source=path.name,
            outcome="failed",
            seconds=time.perf_counter() - started,
            error=str(error),
        )
