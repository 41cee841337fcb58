"""Shared pytest fixtures.

Fixture groups live in their own modules and are loaded here, so that each
kind of test (bundle, S3) keeps its setup in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_bundle", "tests.fixtures_s3"]

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
# Where the real MovieLens ml-latest-small files are looked for, in order.
# They are never committed, because their licence does not allow it.
MOVIELENS_CANDIDATES = (
    REPO_ROOT / "data" / "ml-latest-small",
    REPO_ROOT.parent / "shared" / "data" / "movielens" / "ml-latest-small",
)


def find_movielens() -> Path | None:
    """Return the MovieLens folder: $MOVIELENS_DIR, else the first candidate found."""
    configured = os.environ.get("MOVIELENS_DIR")
    candidates = (Path(configured),) if configured else MOVIELENS_CANDIDATES
    for folder in candidates:
        if (folder / "ratings.csv").is_file():
            return folder
    return None


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """Return the folder of the real MovieLens ml-latest-small files.

    Outside CI the real-data tests are skipped when the files are absent;
    in CI (``CI`` set) they fail, so a missing copy cannot pass unnoticed.
    """
    folder = find_movielens()
    if folder is None:
        message = (
            "MovieLens ml-latest-small not found in "
            f"{', '.join(str(c) for c in MOVIELENS_CANDIDATES)}; set MOVIELENS_DIR "
            "to its folder, or run 'make train DATA=movielens' to download it"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture
def fixtures_dir() -> Path:
    """Return the folder of small fixture files (events, behaviour files)."""
    return FIXTURES_DIR
