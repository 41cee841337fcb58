"""Shared pieces of the benchmark: child processes, summaries, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK_DIR = REPO_ROOT / "bench" / "work"
# The line a child process prints last: this marker, a space, then JSON.
RESULT_MARKER = "BENCH_RESULT"
# Environment of every child: TensorFlow's start-up notes would drown the
# log, and the machine's AWS profile must never reach a benchmark.
CHILD_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}
MIB = 1024 * 1024


class BenchError(Exception):
    """A benchmark step failed; the message names the step and its output."""


@dataclass
class ChildRun:
    """One finished child process: wall time, peak RSS and its JSON result."""

    wall_seconds: float
    peak_rss_bytes: int
    result: dict[str, Any]


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Return min, median and max of repeated measurements, with the samples."""
    if not samples:
        raise ValueError("summarize: no samples")
    values = [float(value) for value in samples]
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
        "samples": values,
    }


def run_child(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800.0,
) -> ChildRun:
    """Run ``python -m bench.worker ARGS`` in a fresh process and measure it.

    The peak resident set size is the child's own ``VmHWM``, which it reads
    from /proc/self/status just before it exits. The kernel's ``ru_maxrss``
    of a child is no use here: it keeps the high-water mark of the address
    space the child was forked from, so a large parent (the S3 server holds
    whole objects) would show up in every child started after it.

    Parameters
    ----------
    args:
        Arguments after ``python -m bench.worker``.
    env:
        Variables added to the parent's environment.
    timeout:
        Seconds after which the child is killed and the step fails.

    Returns
    -------
    ChildRun
        Wall time from start to exit, peak RSS in bytes (from the result),
        and the JSON the worker printed after ``RESULT_MARKER``.

    Raises
    ------
    BenchError
        If the child exits with an error, times out or prints no result.
    """
    command = [sys.executable, "-m", "bench.worker", *args]
    return run_command(command, env=env, timeout=timeout, expect_result=True)


def run_command(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800.0,
    expect_result: bool = False,
) -> ChildRun:
    """Run any command as a child and measure its wall time.

    See ``run_child``. With ``expect_result``, the command must print the
    marker line, and its ``peak_rss_bytes`` (if any) becomes the run's
    peak RSS; without, the result is ``{}`` and the peak RSS is 0.
    """
    child_env = {**os.environ, **CHILD_ENV, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=out, stderr=err, env=child_env, cwd=REPO_ROOT
        )
        status = _wait(process, timeout)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    shown = " ".join(command)
    if status != 0:
        raise BenchError(
            f"benchmark step failed with exit code {status}: {shown}\n{stderr[-4000:]}"
        )
    result: dict[str, Any] = {}
    if expect_result:
        lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
        if not lines:
            raise BenchError(
                f"benchmark step printed no {RESULT_MARKER} line: {shown}\n"
                f"{stdout[-2000:]}\n{stderr[-2000:]}"
            )
        result = json.loads(lines[-1][len(RESULT_MARKER) :])
    peak = int(result.get("peak_rss_bytes", 0))
    return ChildRun(wall_seconds=wall, peak_rss_bytes=peak, result=result)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired as error:
        process.kill()
        process.wait()
        raise BenchError(
            f"benchmark step timed out after {timeout:.0f} s: "
            f"{' '.join(map(str, process.args))}"  # type: ignore[arg-type]
        ) from error


def print_result(result: Mapping[str, Any]) -> None:
    """Print a worker's result line for ``run_child``."""
    print(f"{RESULT_MARKER} {json.dumps(result)}", flush=True)


def peak_rss_self() -> int:
    """Return this process's peak RSS in bytes, from /proc/self/status (VmHWM)."""
    return _proc_status_kib("VmHWM") * 1024


def rss_self() -> int:
    """Return this process's current RSS in bytes, from /proc/self/status."""
    return _proc_status_kib("VmRSS") * 1024


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise BenchError(f"/proc/self/status has no {field} line")


def machine() -> dict[str, Any]:
    """Return CPU count and model, memory, Python and library versions."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    versions = {}
    for name in (
        "onnxruntime",
        "numpy",
        "pandas",
        "pyarrow",
        "tensorflow-cpu",
        "keras",
        "boto3",
        "moto",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_bytes": memory,
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
