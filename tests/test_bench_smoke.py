"""Smoke test of ``python -m bench --quick``, and unit tests of its helpers.

The quick run trains a tiny bundle, scores tiny simulated files locally and
through moto's S3 server, and times TensorFlow's import, so it takes about
a minute: it is marked slow. It checks the shape of the results, never the
figures, which depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import SECTIONS
from bench.common import summarize
from bench.report import MIN_EVENTS_PER_SECOND, targets

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the quick benchmark once into a temporary folder; return the folder."""
    folder = tmp_path_factory.mktemp("bench")
    subprocess.run(
        [
            sys.executable, "-m", "bench", "--quick",
            "--work-dir", str(folder / "work"),
            "--results", str(folder / "results.json"),
            "--report", str(folder / "BENCHMARKS.md"),
        ],
        cwd=REPO_ROOT, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return folder


def _figures(node: Any) -> list[dict[str, Any]]:
    """Return every summarised figure (a dict with a median) under ``node``."""
    if isinstance(node, dict):
        if "median" in node:
            return [node]
        return [figure for value in node.values() for figure in _figures(value)]
    if isinstance(node, list):
        return [figure for value in node for figure in _figures(value)]
    return []


@pytest.mark.slow
def test_quick_run_writes_every_section(quick_run: Path) -> None:
    results = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    assert set(results["sections"]) == set(SECTIONS)


@pytest.mark.slow
@pytest.mark.parametrize("section", SECTIONS)
def test_quick_run_section_has_figures(quick_run: Path, section: str) -> None:
    results = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    figures = _figures(results["sections"][section])
    assert figures, f"section {section} has no min/median/max figure"
    for figure in figures:
        assert figure["min"] <= figure["median"] <= figure["max"], figure


@pytest.mark.slow
def test_quick_run_checks_targets(quick_run: Path) -> None:
    results = json.loads((quick_run / "results.json").read_text(encoding="utf-8"))
    names = [check["name"] for check in results["targets"]]
    assert any("end-to-end scoring" in name for name in names)
    assert any("cold start" in name for name in names)


@pytest.mark.slow
def test_quick_run_writes_report(quick_run: Path) -> None:
    text = (quick_run / "BENCHMARKS.md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## 1. End-to-end scoring throughput",
                    "## 2. Inference alone", "## 3. Cold start",
                    "## 4. Artifact size", "## 5. Training"):
        assert heading in text, heading


def test_summarize_even_count() -> None:
    figure = summarize([4.0, 1.0, 3.0, 2.0])
    assert (figure["min"], figure["median"], figure["max"]) == (1.0, 2.5, 4.0)
    assert figure["n"] == 4


def test_summarize_empty() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def _throughput_results(events_per_second: float) -> dict[str, Any]:
    csv = {
        "events_per_second": summarize([events_per_second]),
        "peak_rss_bytes": summarize([1.0]),
    }
    return {"sections": {"throughput": {"local": {"10000000": {"csv": csv}}}}}


def test_targets_miss_share() -> None:
    checks = targets(_throughput_results(MIN_EVENTS_PER_SECOND * 0.75))
    speed = checks[0]
    assert speed["met"] is False
    assert speed["miss_share"] == pytest.approx(0.25)


def test_targets_met() -> None:
    checks = targets(_throughput_results(MIN_EVENTS_PER_SECOND * 1.5))
    assert checks[0]["met"] is True
