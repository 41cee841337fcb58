"""Cold start: a fresh Python process that gets ready to score.

Two programs run alternately, each in a new interpreter: one imports the
Lambda handler and loads the bundle (onnxruntime session included), the
other imports TensorFlow and loads ``model.keras``, which is what serving
the Keras model directly would need. The figure is the wall time of the
whole process, interpreter start and exit included; the ratio is taken
between the two runs of the same repeat.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import run_command, summarize

# Each program prints the marker line of bench.common with its own timings
# and its peak RSS (VmHWM), read just before it exits.
ONNX_PROGRAM = """
import time
started = time.perf_counter()
import infer.handler
from infer.bundle import load_bundle
imported = time.perf_counter()
load_bundle({model!r})
loaded = time.perf_counter()
import json
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print("BENCH_RESULT " + json.dumps({{
    "import_seconds": imported - started, "load_seconds": loaded - imported,
    "peak_rss_bytes": int(peak[0].split()[1]) * 1024}}))
"""
TENSORFLOW_PROGRAM = """
import time
started = time.perf_counter()
import tensorflow
import keras
imported = time.perf_counter()
keras.saving.load_model({model!r})
loaded = time.perf_counter()
import json
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print("BENCH_RESULT " + json.dumps({{
    "import_seconds": imported - started, "load_seconds": loaded - imported,
    "peak_rss_bytes": int(peak[0].split()[1]) * 1024}}))
"""


def run(model: Path, *, repeats: int) -> dict[str, Any]:
    """Measure both cold starts ``repeats`` times and their ratio.

    Returns
    -------
    dict
        Per path (``onnxruntime``, ``tensorflow``): process wall seconds,
        the import and load seconds inside it, peak RSS; and
        ``ratio_tensorflow_to_onnxruntime`` of the process wall times.
    """
    programs = {
        "onnxruntime": ONNX_PROGRAM.format(model=str(model)),
        "tensorflow": TENSORFLOW_PROGRAM.format(model=str(model / "model.keras")),
    }
    runs: dict[str, list[Any]] = {name: [] for name in programs}
    print(f"  cold start x{repeats}")
    for _ in range(repeats):
        for name, program in programs.items():
            command = [sys.executable, "-c", program]
            runs[name].append(run_command(command, expect_result=True))
    results: dict[str, Any] = {}
    for name, measured in runs.items():
        results[name] = {
            "process_seconds": summarize([r.wall_seconds for r in measured]),
            "import_seconds": summarize([r.result["import_seconds"] for r in measured]),
            "load_seconds": summarize([r.result["load_seconds"] for r in measured]),
            "peak_rss_bytes": summarize([r.peak_rss_bytes for r in measured]),
        }
    ratios = [
        tf_run.wall_seconds / ort_run.wall_seconds
        for tf_run, ort_run in zip(runs["tensorflow"], runs["onnxruntime"], strict=True)
    ]
    results["ratio_tensorflow_to_onnxruntime"] = summarize(ratios)
    return results
