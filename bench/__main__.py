"""Run the benchmarks and write bench/results.json and BENCHMARKS.md.

python -m bench [--quick] [--sizes 1000000,10000000] [--repeats N]
                [--only SECTION[,SECTION]] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import coldstart, data, inference, report, size, throughput, training
from bench.common import DEFAULT_WORK_DIR, REPO_ROOT, machine, run_command

SECTIONS = ("throughput", "inference", "coldstart", "size", "training")
FULL_SIZES = (1_000_000, 10_000_000)
QUICK_SIZES = (20_000,)
FULL_REPEATS = 5
# Keras' default predict runs batches of 32 rows one after another, which
# takes seconds per run, so it gets fewer repeats than the other methods.
KERAS_DEFAULT_REPEATS = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure scoring throughput, inference, cold start, package "
        "size and training time; write results.json and BENCHMARKS.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, one repeat, no package build, a two-epoch training run "
        "on a small simulated file: a smoke test, not a measurement",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated events per simulated file (default 1000000,10000000; "
        "20000 with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"runs per figure (default {FULL_REPEATS}, 1 with --quick); files of "
        f"5 M events or more get 2 fewer, at least 1",
    )
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated sections to run, from {', '.join(SECTIONS)}; the "
        f"others are kept from an existing results file",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model bundle folder (default artifacts/latest, else "
        "bench/work/artifacts/latest, else one is trained there)",
    )
    parser.add_argument(
        "--zip",
        type=Path,
        default=None,
        help="Lambda zip to measure (default build/lambda.zip; built under the "
        "work folder when absent, except with --quick)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="folder for generated files, scores and profiles (default bench/work)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "bench" / "results.json",
        help="results file to write (default bench/results.json)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=REPO_ROOT / "BENCHMARKS.md",
        help="Markdown report to write (default BENCHMARKS.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections, then write the results and the report."""
    args = build_parser().parse_args(argv)
    sections = _sections(args.only)
    sizes = _sizes(args.sizes, args.quick)
    repeats = args.repeats or (1 if args.quick else FULL_REPEATS)
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)

    results = _previous(args.results) if args.only else {}
    results.update(
        {
            "command": _command(argv),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "code": _code_version(),
            "settings": {"quick": args.quick, "sizes": list(sizes), "repeats": repeats},
        }
    )
    results.setdefault("sections", {})
    started = time.perf_counter()

    if "training" in sections:
        print("training")
        results["sections"]["training"] = training.run(
            work_dir, quick=args.quick, repeats=1
        )
    training_results = (
        results["sections"].get("training") if "training" in sections else None
    )
    model = _model(args.model, work_dir, training_results, args.quick)
    results["model"] = {"version": _model_version(model)}
    print(f"model bundle {model}")

    files: dict[int, dict] = {}
    if {"throughput", "inference"} & sections:
        print("data")
        files = data.prepare(work_dir, sizes)
        results["data"] = {
            str(size_): {key: value for key, value in info.items() if key != "files"}
            | {"bytes": {fmt: f["bytes"] for fmt, f in info["files"].items()}}
            for size_, info in files.items()
        }
    if "throughput" in sections:
        print("throughput")
        results["sections"]["throughput"] = throughput.run(
            files, model, work_dir, repeats=repeats
        )
    if "inference" in sections:
        print("inference")
        largest = files[max(files)]
        results["sections"]["inference"] = inference.run(
            Path(largest["files"]["parquet"]["path"]),
            model,
            repeats=repeats,
            keras_default_repeats=KERAS_DEFAULT_REPEATS,
        )
    if "coldstart" in sections:
        print("cold start")
        results["sections"]["coldstart"] = coldstart.run(model, repeats=repeats)
    if "size" in sections:
        print("size")
        results["sections"]["size"] = size.run(
            model, work_dir, zip_path=args.zip, build=not args.quick
        )

    results["duration_seconds"] = time.perf_counter() - started
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets"] = report.targets(results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    args.report.write_text(report.render(results), encoding="utf-8")
    print(
        f"wrote {args.results} and {args.report} in {results['duration_seconds']:.0f} s"
    )
    for line in report.target_lines(results["targets"]):
        print(line)
    return 0


def _sections(only: str | None) -> set[str]:
    if not only:
        return set(SECTIONS)
    chosen = {name.strip() for name in only.split(",") if name.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise SystemExit(
            f"unknown section(s) {sorted(unknown)} in --only; choose from "
            f"{', '.join(SECTIONS)}"
        )
    return chosen


def _sizes(text: str | None, quick: bool) -> tuple[int, ...]:
    if not text:
        return QUICK_SIZES if quick else FULL_SIZES
    try:
        sizes = tuple(sorted(int(part) for part in text.split(",") if part.strip()))
    except ValueError as error:
        raise SystemExit(
            f"invalid --sizes {text!r}; expected comma-separated event counts "
            f"such as 1000000,10000000"
        ) from error
    if not sizes or min(sizes) < 1_000:
        raise SystemExit(f"invalid --sizes {text!r}; each size must be >= 1000")
    return sizes


def _previous(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    previous: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return previous


def _command(argv: list[str] | None) -> str:
    words = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m bench", *map(shlex.quote, words)])


def _model(
    given: Path | None, work_dir: Path, trained: dict[str, Any] | None, quick: bool
) -> Path:
    """Return the bundle to benchmark; train one when none is found."""
    if given is not None:
        return given.resolve()
    candidates = [REPO_ROOT / "artifacts" / "latest", work_dir / "artifacts" / "latest"]
    if quick and trained:
        # A quick run benchmarks the bundle it just trained, so that its
        # result does not depend on what else is in the repository.
        candidates = [
            Path(run["bundle"]) for run in trained.values() if "bundle" in run
        ]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate.resolve()
    target = work_dir / "artifacts"
    print(f"no model bundle found; training one into {target}")
    run_command(
        [
            sys.executable,
            "-m",
            "train",
            "fit",
            "--data",
            "simulated",
            "--out",
            str(target),
            "--quiet",
        ],
        timeout=3600,
    )
    return (target / "latest").resolve()


def _code_version() -> dict[str, Any]:
    """Return the commit measured and the files of the scoring stage changed since."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "infer"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    return {
        "commit": commit or None,
        "uncommitted_infer_files": [line[3:] for line in changed if line.strip()],
    }  # fmt: skip


def _model_version(model: Path) -> str:
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    return str(manifest.get("model_version"))


if __name__ == "__main__":
    sys.exit(main())
