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


# A made-up MovieLens-format sample (CRLF, quoted commas, a movie without
# genres). It is written at test time so that no file named like the real
# data set is committed.
TINY_MOVIELENS_FILES = {
    "movies.csv": [
        "movieId,title,genres",
        '10,"Toy, Story (1995)",Adventure|Animation|Comedy',
        "20,Heat (1995),Action",
        "30,Unknown (2001),(no genres listed)",
    ],
    "ratings.csv": [
        "userId,movieId,rating,timestamp",
        "1,10,4.5,1000",
        "1,20,3.0,2000",
        "2,30,5.0,1500",
    ],
    "tags.csv": [
        "userId,movieId,tag,timestamp",
        '2,10,"funny, smart",1800',
    ],
}


def write_tiny_movielens(folder: Path) -> Path:
    """Write the made-up MovieLens-format sample into ``folder``, return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in TINY_MOVIELENS_FILES.items():
        (folder / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return folder


@pytest.fixture
def tiny_movielens_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh folder with the made-up MovieLens-format sample."""
    return write_tiny_movielens(tmp_path_factory.mktemp("movielens_tiny"))


@pytest.fixture
def fixtures_dir() -> Path:
    """Return the folder of small fixture files (events, behaviour files)."""
    return FIXTURES_DIR
