"""Training wall time: the command that ``make train`` runs, on each data set.

``make train DATA=... OUT=...`` runs ``python -m train fit --data DATA
--out OUT``; the benchmark calls the same entry point,
``train.__main__.main``, in a fresh ``python -c`` process (with ``--quiet``,
which hides the progress bar and Keras' epoch lines) so that make's
install check cannot reinstall anything inside the measurement. Each run
is a fresh process; its wall time includes the TensorFlow import, the
baselines, the ONNX export with its parity check and the report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, run_command, summarize

MOVIELENS_DIR = REPO_ROOT.parent / "shared" / "data" / "movielens" / "ml-latest-small"
# The quick run trains on a small simulated file for at most two epochs:
# 300 users over 120 days give enough weekly cutoffs for the three splits.
QUICK_SAMPLE = ("--users", "300", "--days", "120", "--seed", "11")
QUICK_EPOCHS = "2"
# Runs ``python -m train`` with the arguments that follow ``-c PROGRAM``, then
# prints its peak RSS (VmHWM) as the marker line of bench.common.
TRAIN_PROGRAM = """
import json, sys
from train.__main__ import main
code = main(sys.argv[1:])
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print("BENCH_RESULT " + json.dumps({"peak_rss_bytes": int(peak[0].split()[1]) * 1024}))
sys.exit(code)
"""


def run(work_dir: Path, *, quick: bool, repeats: int) -> dict[str, Any]:
    """Time ``python -m train fit`` on the simulated sample and on MovieLens.

    In quick mode, only a small simulated file is trained on, for at most
    two epochs. MovieLens is skipped, with a reason, when its folder is
    absent.

    Returns
    -------
    dict
        Per data set: the command, process wall seconds, peak RSS, and the
        bundle folder of the last run (``bundle``).
    """
    out_dir = work_dir / "train-runs"
    data_sets: dict[str, list[str]] = {}
    if quick:
        sample = work_dir / "data" / "train-quick.csv"
        if not sample.is_file():
            run_command(
                [
                    sys.executable,
                    "-m",
                    "train",
                    "simulate",
                    "--out",
                    str(sample),
                    *QUICK_SAMPLE,
                ]
            )
        data_sets["simulated (quick)"] = [
            "--data",
            str(sample),
            "--epochs",
            QUICK_EPOCHS,
        ]
    else:
        data_sets["simulated"] = ["--data", "simulated"]
    results: dict[str, Any] = {}
    if not quick:
        if (MOVIELENS_DIR / "ratings.csv").is_file():
            data_sets["MovieLens ml-latest-small"] = ["--data", str(MOVIELENS_DIR)]
        else:
            results["MovieLens ml-latest-small"] = {
                "skipped": "MovieLens ml-latest-small is not present beside the "
                "repository",
            }
    for name, data_args in data_sets.items():
        target = out_dir / _slug(name)
        command = [sys.executable, "-c", TRAIN_PROGRAM, "fit", *data_args,
                   "--out", str(target), "--quiet"]  # fmt: skip
        print(f"  train on {name} x{repeats}")
        runs = [
            run_command(command, timeout=3600, expect_result=True)
            for _ in range(repeats)
        ]
        results[name] = {
            "command": _shown(data_args),
            "seconds": summarize([r.wall_seconds for r in runs]),
            "peak_rss_bytes": summarize([r.peak_rss_bytes for r in runs]),
            "bundle": str((target / "latest").resolve()),
        }
    return results


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _shown(data_args: list[str]) -> str:
    """Return the command as the report shows it, with no local paths."""
    shown = []
    for arg in data_args:
        if arg == str(MOVIELENS_DIR):
            arg = "<ml-latest-small folder>"
        elif "/" in arg:
            arg = f"<{Path(arg).name}>"
        shown.append(arg)
    return "python -m train fit " + " ".join(shown) + " --out <folder> --quiet"
