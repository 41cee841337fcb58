"""Command line of the scoring stage: ``python -m infer <command>``.

Each subcommand lives in an ``add_<name>_command(subparsers)`` function
that adds its parser and sets ``handler`` to a function taking the parsed
arguments and returning the exit code. To add a subcommand, write such a
function and append it to ``COMMANDS``.

``score`` reads behaviour files, folders or globs, scores each file with
one bundle, and prints one summary line per file. A file that breaks the
input contract, yields no candidates, fails with an unexpected error, or an
argument that matches no file is reported and skipped, and the exit code
is 1 when any input failed. Problems with the arguments, the output
destination or the bundle are found before any file is scored and give
exit code 2.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from infer.bundle import Bundle, load_bundle
from infer.errors import InterestDecayError
from infer.output import (
    EXTENSIONS,
    GZIP_FORMATS,
    KNOWN_SUFFIXES,
    OUTPUT_FORMATS,
    format_from_name,
    is_gzip_name,
    write_scores,
)
from infer.reader import detect_format
from infer.schema import ALL_COLUMNS
from infer.scorer import FileSummary, score_file
from infer.validate import MILLISECONDS_FROM, MIN_TIMESTAMP, TOO_LARGE_FROM
from infer.watch import add_watch_command

EXIT_OK = 0
EXIT_FILE_FAILED = 1
EXIT_USAGE = 2


def parse_as_of(text: str) -> int:
    """Parse ``--as-of`` into epoch seconds.

    Accepted forms: epoch seconds, epoch milliseconds (a number of 1e11 or
    more, the same rule as for timestamps in input files), or ISO-8601 (no
    offset means UTC). The time must be in 1990 or later, like event times.

    Raises
    ------
    argparse.ArgumentTypeError
        If the text is none of these, or the time is before 1990.
    """
    stripped = text.strip()
    seconds: int | None = None
    if stripped.lstrip("-").isdigit():
        number = int(stripped)
        if MILLISECONDS_FROM <= number < TOO_LARGE_FROM:
            number //= 1000
        if MIN_TIMESTAMP <= number < MILLISECONDS_FROM:
            seconds = number
    else:
        try:
            moment = datetime.fromisoformat(stripped)
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            if moment.timestamp() >= MIN_TIMESTAMP:
                seconds = int(moment.timestamp())
    if seconds is None:
        raise argparse.ArgumentTypeError(
            f"invalid --as-of {text!r}; expected a time from 1990 on, as epoch "
            f"seconds such as 1718000000, epoch milliseconds such as "
            f"1718000000000, or ISO-8601 such as 2024-06-10T06:13:20Z"
        )
    return seconds


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
        help="output file for all scores, named with one of "
        f"{', '.join(KNOWN_SUFFIXES)} (.gz is gzip-compressed) unless --format "
        "is given; or a folder (existing, or given with a trailing /) to write "
        "one output file per input, at the input's path below the folder or "
        "glob it was found in, plus the format suffix "
        "(in/a/events.csv -> OUT/a/events.csv.parquet); must not be an input",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="output format (default: from the --out suffix; parquet for a "
        "folder)",
    )
    parser.add_argument(
        "--as-of",
        type=parse_as_of,
        default=None,
        metavar="TIME",
        help="reference time in epoch seconds or ISO-8601 (no offset means UTC); "
        "a number of 1e11 or more is read as epoch milliseconds; default: the "
        "latest event time of each file. A file with no event in the model's "
        "lookback before this time fails",
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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an unexpected error in a file to stderr "
        "(the file is reported as failed either way)",
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


@dataclass(frozen=True)
class InputFile:
    """A behaviour file to score, and its path below the folder or glob base.

    ``relative`` is the path below the folder given on the command line, or
    below the fixed part of a glob (``data/**/*.csv`` -> below ``data``), or
    the file name for a file given by name. A per-file output mirrors it.
    """

    path: Path
    relative: Path


def find_inputs(patterns: Sequence[str]) -> tuple[list[InputFile], list[str]]:
    """Expand files, folders and globs into behaviour files with relative paths.

    Returns
    -------
    tuple[list[InputFile], list[str]]
        The files in argument order (folders and globs sorted, duplicates
        removed) and the arguments that matched no file.
    """
    files: list[InputFile] = []
    seen: set[Path] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            base = path
            found = sorted(p for p in path.rglob("*") if p.is_file() and _supported(p))
        elif path.exists():
            base = path.parent
            found = [path]
        else:
            base = _glob_base(path)
            found = sorted(
                Path(p)
                for p in glob.glob(pattern, recursive=True)
                if Path(p).is_file() and _supported(Path(p))
            )
        if not found:
            unmatched.append(pattern)
        for item in found:
            if item not in seen:
                seen.add(item)
                files.append(InputFile(path=item, relative=item.relative_to(base)))
    return files, unmatched


def expand_inputs(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs into behaviour files.

    Returns
    -------
    tuple[list[Path], list[str]]
        The files in argument order (folders and globs sorted, duplicates
        removed) and the arguments that matched no file.
    """
    files, unmatched = find_inputs(patterns)
    return [item.path for item in files], unmatched


def _glob_base(pattern: Path) -> Path:
    fixed: list[str] = []
    # The last part names files, so it never belongs to the base folder.
    for part in pattern.parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed)


def _supported(path: Path) -> bool:
    try:
        detect_format(path.name)
    except InterestDecayError:
        return False
    return True


class UsageError(Exception):
    """An argument problem found before scoring; the message is printed as is."""


def run_score(args: argparse.Namespace) -> int:
    """Run ``score``; return 0, 1 when any input failed, 2 on usage errors."""
    inputs, unmatched = find_inputs(args.inputs)
    for pattern in unmatched:
        print(
            f"{pattern}: failed: no behaviour file found; expected a file, a folder "
            f"or a glob that matches files ending in .csv, .parquet or .jsonl "
            f"(optionally .gz); check the path"
        )
    if not inputs:
        print("error: no input files to score", file=sys.stderr)
        return EXIT_USAGE

    out = Path(args.out)
    per_file = out.is_dir() or str(args.out).endswith(("/", os.sep))
    try:
        fmt = _output_format(args.format, out, per_file)
        targets = _plan_outputs(inputs, out, fmt) if per_file else {}
        _check_output_location(out if per_file else out.parent, out)
        _check_not_input(inputs, [out] if not per_file else list(targets.values()))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    try:
        bundle = load_bundle(args.model, threads=args.threads)
    except InterestDecayError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    columns = dict(args.column)
    summaries: list[FileSummary] = []
    collected: list[pd.DataFrame] = []
    progress = tqdm(inputs, unit="file", disable=True if args.no_progress else None)
    for item in progress:
        summary = _score_one(item.path, bundle, fmt, args, columns)
        if summary.scores is not None:
            if per_file:
                _write_one(summary, targets[item.path], fmt)
            else:
                collected.append(summary.scores)
            summary.scores = None
        summaries.append(summary)
        tqdm.write(summary.line())

    if collected:
        try:
            write_scores(pd.concat(collected, ignore_index=True), out, fmt)
        except OSError as error:
            print(
                f"error: cannot write --out {out}: {error}; no output was written; "
                f"check the path and free space, then run again",
                file=sys.stderr,
            )
            return EXIT_USAGE
    return _report_totals(summaries, unmatched, out, per_file, bundle)


def _output_format(chosen: str | None, out: Path, per_file: bool) -> str:
    if chosen is not None:
        if not per_file and is_gzip_name(out) and chosen not in GZIP_FORMATS:
            raise UsageError(
                f"--out {out} ends in .gz, but {chosen} output cannot be "
                f"gzip-compressed; drop .gz, or choose --format "
                f"{' or '.join(GZIP_FORMATS)}"
            )
        return chosen
    if per_file:
        return "parquet"
    implied = format_from_name(out)
    if implied is None:
        raise UsageError(
            f"cannot tell the output format from --out {out}; name it with one of "
            f"{', '.join(KNOWN_SUFFIXES)}, or pass --format "
            f"{{{','.join(OUTPUT_FORMATS)}}}"
        )
    return implied


def _plan_outputs(inputs: Sequence[InputFile], out: Path, fmt: str) -> dict[Path, Path]:
    targets: dict[Path, Path] = {}
    writers: dict[Path, Path] = {}
    for item in inputs:
        target = out / item.relative.parent / f"{item.relative.name}{EXTENSIONS[fmt]}"
        if target in writers:
            raise UsageError(
                f"{writers[target]} and {item.path} would both write {target}; "
                f"pass their common folder instead of the files, or score them "
                f"into different folders"
            )
        writers[target] = item.path
        targets[item.path] = target
    return targets


def _check_output_location(folder: Path, out: Path) -> None:
    # The nearest existing ancestor decides whether the folder can be made.
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(
            f"cannot write --out {out}: {existing} is a file, not a folder; "
            f"choose an --out path in a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write --out {out}: the folder {existing} is not writable; "
            f"choose an --out path in a folder you can write to"
        )


def _check_not_input(inputs: Sequence[InputFile], outputs: Sequence[Path]) -> None:
    sources = {item.path.resolve(): item.path for item in inputs}
    for output in outputs:
        source = sources.get(output.resolve())
        if source is not None:
            raise UsageError(
                f"--out {output} is the input file {source}; scoring would "
                f"overwrite it; choose another --out path"
            )


def _write_one(summary: FileSummary, target: Path, fmt: str) -> None:
    started = time.perf_counter()
    try:
        write_scores(summary.scores, target, fmt)
    except OSError as error:
        summary.outcome = "failed"
        summary.error = (
            f"cannot write output {target}: {error}; check the path and free space"
        )
        return
    summary.output = str(target)
    summary.phase_seconds["write"] = time.perf_counter() - started
    summary.seconds += summary.phase_seconds["write"]


def _report_totals(
    summaries: Sequence[FileSummary],
    unmatched: Sequence[str],
    out: Path,
    per_file: bool,
    bundle: Bundle,
) -> int:
    scored = sum(summary.outcome == "ok" for summary in summaries)
    if scored == 0:
        written = "none"
    else:
        written = f"{out}{os.sep}" if per_file else str(out)
    missing = f"; {len(unmatched)} input(s) matched no file" if unmatched else ""
    print(
        f"scored {scored} of {len(summaries)} file(s) with model "
        f"{bundle.model_version}{missing}; output: {written}",
        file=sys.stderr,
    )
    if scored < len(summaries) or unmatched:
        return EXIT_FILE_FAILED
    return EXIT_OK


def _score_one(
    path: Path,
    bundle: Bundle,
    fmt: str,
    args: argparse.Namespace,
    columns: dict[str, str],
) -> FileSummary:
    started = time.perf_counter()
    try:
        summary = score_file(
            path,
            bundle,
            out=None,
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
    except Exception as error:
        # One file must not stop the others, so an error that the input
        # checks did not foresee fails only this file.
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        return FileSummary(
            source=path.name,
            outcome="failed",
            seconds=time.perf_counter() - started,
            error=_unexpected_message(error),
        )
    if summary.candidates == 0:
        summary.outcome = "failed"
        summary.error = _no_candidates_message(
            summary.as_of, bundle.feature_config.lookback_days, args.as_of is not None
        )
        summary.scores = None
    return summary


def _unexpected_message(error: Exception) -> str:
    return (
        f"unexpected error {type(error).__name__}: {error}; the scorer does not "
        f"check for this problem, so check the file's format, encoding and column "
        f"types, and run again with --debug to see the traceback"
    )


def _no_candidates_message(as_of: int | None, lookback_days: float, given: bool) -> str:
    when = "unknown"
    if as_of is not None:
        when = f"{datetime.fromtimestamp(as_of, UTC):%Y-%m-%dT%H:%M:%SZ} ({as_of})"
    fix = "check --as-of" if given else "check the file's timestamps"
    return (
        f"0 candidates: no events in the {lookback_days:g}-day lookback before "
        f"as_of {when}; {fix}"
    )
