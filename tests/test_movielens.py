"""MovieLens adapter: real-file counts, genre explosion, checked download.

The download tests serve zips built in the test from a loopback HTTP server;
they never contact GroupLens.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from infer.errors import InputContractError
from tests.conftest import write_tiny_movielens
from train.movielens import (
    FILE_SHA256,
    FOLDER_NAME,
    DownloadError,
    ensure_movielens,
    load_movielens,
)

EXPECTED_COLUMNS = ["user_id", "topic", "event_type", "timestamp", "value", "item_id"]


@pytest.fixture(scope="module")
def movielens_events(movielens_dir: Path):
    return load_movielens(movielens_dir)


def test_real_ratings_rows(movielens_events) -> None:
    rows = {item["name"]: item["rows"] for item in movielens_events.files}
    assert rows["ratings.csv"] == 100_836


def test_real_tags_rows(movielens_events) -> None:
    rows = {item["name"]: item["rows"] for item in movielens_events.files}
    assert rows["tags.csv"] == 3_683


def test_real_movies_rows(movielens_events) -> None:
    rows = {item["name"]: item["rows"] for item in movielens_events.files}
    assert rows["movies.csv"] == 9_742


def test_real_fingerprints_match_release(movielens_events) -> None:
    for item in movielens_events.files:
        assert item["sha256"] == FILE_SHA256[item["name"]], item["name"]


def test_real_event_counts_after_genre_explosion(movielens_events) -> None:
    counts = movielens_events.events["event_type"].value_counts().to_dict()
    assert counts == {"rate": 274_480, "tag": 9_938}


def test_real_users(movielens_events) -> None:
    assert movielens_events.events["user_id"].nunique() == 610


def test_real_topics_are_20_genres(movielens_events) -> None:
    topics = set(movielens_events.events["topic"].unique())
    assert len(topics) == 20
    assert "(no genres listed)" in topics
    assert "Film-Noir" in topics


def test_real_source_name(movielens_events) -> None:
    assert movielens_events.source == "movielens"


def test_real_schema(movielens_events) -> None:
    events = movielens_events.events
    assert list(events.columns) == EXPECTED_COLUMNS
    assert events["timestamp"].dtype == "int64"
    assert events["value"].dtype == "float64"
    assert events["timestamp"].is_monotonic_increasing
    assert events["timestamp"].min() == 828_124_615
    assert events["timestamp"].max() == 1_537_799_250


def test_real_rating_values(movielens_events) -> None:
    rated = movielens_events.events.query("event_type == 'rate'")["value"]
    assert rated.min() == 0.5
    assert rated.max() == 5.0


def test_tiny_genre_explosion(tiny_movielens_dir: Path) -> None:
    data = load_movielens(tiny_movielens_dir)
    got = data.events.sort_values(["timestamp", "topic"], ignore_index=True)
    expected = pd.DataFrame({
        "user_id": ["1", "1", "1", "2", "2", "2", "2", "1"],
        "topic": ["Adventure", "Animation", "Comedy", "(no genres listed)",
                  "Adventure", "Animation", "Comedy", "Action"],
        "event_type": ["rate", "rate", "rate", "rate", "tag", "tag", "tag", "rate"],
        "timestamp": [1000, 1000, 1000, 1500, 1800, 1800, 1800, 2000],
        "value": [4.5, 4.5, 4.5, 5.0, 1.0, 1.0, 1.0, 3.0],
        "item_id": ["10", "10", "10", "30", "10", "10", "10", "20"],
    })
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_tiny_fingerprint_rows(tiny_movielens_dir: Path) -> None:
    data = load_movielens(tiny_movielens_dir)
    rows = {item["name"]: item["rows"] for item in data.files}
    assert rows == {"ratings.csv": 3, "tags.csv": 1, "movies.csv": 3}


def test_missing_file_named(tmp_path: Path) -> None:
    folder = write_tiny_movielens(tmp_path / "ml")
    (folder / "tags.csv").unlink()
    with pytest.raises(InputContractError, match="tags.csv not found") as raised:
        load_movielens(folder)
    assert raised.value.source == str(folder / "tags.csv")


def test_wrong_header_named(tmp_path: Path) -> None:
    folder = write_tiny_movielens(tmp_path / "ml")
    header = b"user,movie,rating,timestamp\r\n1,10,4.0,1\r\n"
    (folder / "ratings.csv").write_bytes(header)
    with pytest.raises(InputContractError) as raised:
        load_movielens(folder)
    assert str(raised.value) == (
        f"MovieLens file {folder / 'ratings.csv'} has header "
        f"['user', 'movie', 'rating', 'timestamp'], expected "
        f"['userId', 'movieId', 'rating', 'timestamp']; use the unmodified "
        f"ml-latest-small files from GroupLens"
    )


def test_unknown_movie_rejected(tmp_path: Path) -> None:
    folder = write_tiny_movielens(tmp_path / "ml")
    (folder / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,99,4.0,1\r\n"
    )
    with pytest.raises(InputContractError, match="movieId 99"):
        load_movielens(folder)


# --- download over a loopback HTTP server ---------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests_served: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (name fixed by http.server)
        self.requests_served.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def served_dir(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """Serve a fresh folder on 127.0.0.1; yield (folder, base URL, paths served)."""
    root = tmp_path / "served"
    root.mkdir()
    served: list[str] = []
    handler = type("Handler", (_Handler,), {"requests_served": served})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _build_zip(movielens_dir: Path, target: Path, *, corrupt: str | None = None) -> str:
    """Zip the real files as GroupLens does; optionally flip a byte of one."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name in FILE_SHA256:
            data = (movielens_dir / name).read_bytes()
            if name == corrupt:
                data = data[:-2] + b"9" + data[-1:]
            zipped.writestr(f"{FOLDER_NAME}/{name}", data)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def test_download_extracts_checked_files(
    movielens_dir: Path, served_dir, tmp_path: Path
) -> None:
    root, base_url, _ = served_dir
    zip_sha256 = _build_zip(movielens_dir, root / "ml.zip")
    dest = tmp_path / "data"
    folder = ensure_movielens(dest, url=f"{base_url}/ml.zip", sha256=zip_sha256)
    assert folder == dest / FOLDER_NAME
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILE_SHA256)
    assert sorted(p.name for p in dest.iterdir()) == [FOLDER_NAME]
    ratings = (folder / "ratings.csv").read_bytes()
    assert hashlib.sha256(ratings).hexdigest() == FILE_SHA256["ratings.csv"]


def test_download_skipped_when_present(served_dir, tmp_path: Path
) -> None:
    _, base_url, served = served_dir
    dest = tmp_path / "data"
    dest.mkdir()
    write_tiny_movielens(dest / FOLDER_NAME)
    folder = ensure_movielens(dest, url=f"{base_url}/ml.zip")
    assert folder == dest / FOLDER_NAME
    assert served == []


def test_download_corrupt_file_rejected(
    movielens_dir: Path, served_dir, tmp_path: Path
) -> None:
    root, base_url, _ = served_dir
    _build_zip(movielens_dir, root / "ml.zip", corrupt="ratings.csv")
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"ml-latest-small/ratings.csv .* SHA-256"):
        ensure_movielens(dest, url=f"{base_url}/ml.zip")
    assert list(dest.iterdir()) == []


def test_download_zip_checksum_rejected(
    movielens_dir: Path, served_dir, tmp_path: Path
) -> None:
    root, base_url, _ = served_dir
    _build_zip(movielens_dir, root / "ml.zip")
    dest = tmp_path / "data"
    url = f"{base_url}/ml.zip"
    with pytest.raises(DownloadError) as raised:
        ensure_movielens(dest, url=url, sha256="0" * 64)
    assert str(raised.value).startswith(f"download from {url} has SHA-256 ")
    assert list(dest.iterdir()) == []


def test_download_truncated_zip_rejected(
    movielens_dir: Path, served_dir, tmp_path: Path
) -> None:
    root, base_url, _ = served_dir
    _build_zip(movielens_dir, tmp_path / "full.zip")
    (root / "ml.zip").write_bytes((tmp_path / "full.zip").read_bytes()[:50_000])
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="not a valid zip file"):
        ensure_movielens(dest, url=f"{base_url}/ml.zip")
    assert list(dest.iterdir()) == []


def test_download_http_error_rejected(served_dir, tmp_path: Path) -> None:
    _, base_url, _ = served_dir
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="HTTP Error 404"):
        ensure_movielens(dest, url=f"{base_url}/missing.zip")
    assert list(dest.iterdir()) == []
