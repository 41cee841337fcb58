"""Shared pytest fixtures.

Fixture groups live in their own modules and are loaded here, so that each
kind of test (bundle, S3) keeps its setup in one place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_bundle", "tests.fixtures_s3"]

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
# The real MovieLens files are kept beside the repository, never inside it,
# because their licence does not allow committing them here.
MOVIELENS_DIR = REPO_ROOT.parent / "shared" / "data" / "movielens" / "ml-latest-small"


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """Return the folder of the real MovieLens ml-latest-small files."""
    if not (MOVIELENS_DIR / "ratings.csv").is_file():
        pytest.fail(
            f"MovieLens files not found in {MOVIELENS_DIR}; "
            "place ml-latest-small there to run the real-data tests"
        )
    return MOVIELENS_DIR


@pytest.fixture
def fixtures_dir() -> Path:
    """Return the folder of small fixture files (events, behaviour files)."""
    return FIXTURES_DIR
