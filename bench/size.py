"""Size of the Lambda zip package, zipped and unzipped, and what takes it.

The zip is ``infra.package``'s output: an existing ``build/lambda.zip``
(from ``make package``), or one built into the work folder. Beside it, the
installed size of the scoring stage's main dependencies in this virtual
environment shows how much the package's stripping saves.
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, summarize

DEFAULT_ZIP = REPO_ROOT / "build" / "lambda.zip"
SCORING_DISTRIBUTIONS = ("onnxruntime", "pyarrow", "numpy", "pandas")


def run(model: Path, work_dir: Path, *, zip_path: Path | None, build: bool) -> dict:
    """Measure the Lambda zip, building one when none exists and ``build`` is set.

    Parameters
    ----------
    model:
        The bundle to package when a zip is built.
    work_dir:
        Where a built zip goes (``build/lambda.zip`` under it).
    zip_path:
        A zip to measure; default ``build/lambda.zip`` of the repository.
    build:
        Build a zip with ``infra.package.build_package`` when none exists;
        pip then downloads the Lambda wheels.

    Returns
    -------
    dict
        ``zip`` (None when no zip was found or built) with zipped and
        unzipped bytes and the largest top-level entries, and
        ``installed`` bytes per scoring dependency in this environment.
    """
    results: dict[str, Any] = {"installed": _installed_sizes(), "zip": None}
    candidates = (
        [zip_path] if zip_path else [DEFAULT_ZIP, work_dir / "build" / "lambda.zip"]
    )
    found = next((path for path in candidates if path.is_file()), None)
    built_seconds = None
    if found is None and build:
        from infra.package import build_package

        found = work_dir / "build" / "lambda.zip"
        print(f"  build {found} with infra.package")
        started = time.perf_counter()
        build_package(model, found)
        built_seconds = time.perf_counter() - started
    if found is not None:
        from infra.package import measure

        print(f"  measure {found}")
        report = measure(found)
        results["zip"] = {
            "path": str(
                found.relative_to(REPO_ROOT)
                if found.is_relative_to(REPO_ROOT)
                else found
            ),
            "zipped_bytes": summarize([report.zipped_bytes]),
            "unzipped_bytes": summarize([report.unzipped_bytes]),
            "largest": [list(entry) for entry in report.largest[:10]],
            "build_seconds": built_seconds,
        }
    return results


def _installed_sizes() -> dict[str, Any]:
    sizes = {}
    for name in SCORING_DISTRIBUTIONS:
        dist = metadata.distribution(name)
        total = 0
        for file in dist.files or []:
            located = Path(str(dist.locate_file(file)))
            if located.is_file():
                total += located.stat().st_size
        sizes[name] = summarize([total])
    return sizes
