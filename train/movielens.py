"""MovieLens ml-latest-small as canonical behaviour events.

Each rating becomes a ``rate`` event whose ``value`` is the rating, and each
tag becomes a ``tag`` event with ``value`` 1.0. The topic is the movie's
genre: a movie with three genres gives three events, and "(no genres
listed)" is kept as a topic of its own. MovieLens timestamps are already
epoch seconds (UTC).

``ensure_movielens`` finds a local copy or downloads the official zip from
GroupLens, checks every extracted file against the SHA-256 sums below and
moves the folder into place only when all of them match.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

from infer.errors import InputContractError, InterestDecayError
from infer.schema import EVENT_TYPE, ITEM_ID, TIMESTAMP, TOPIC, USER_ID, VALUE
from train.sources import SourceData, file_fingerprint

logger = logging.getLogger(__name__)

FOLDER_NAME = "ml-latest-small"
MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"

# SHA-256 of the files in the ml-latest-small release generated on
# 2018-09-26 (CRLF line endings, as they come in the official zip).
FILE_SHA256: dict[str, str] = {
    "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
}
# NOTE: the SHA-256 of the zip itself is not pinned because no trusted copy
# of it was available when this was written. The download is still pinned:
# every file taken from the zip must match FILE_SHA256. Pass ``sha256`` to
# ``ensure_movielens`` to check the zip as well.
ZIP_SHA256: str | None = None

RATINGS = "ratings.csv"
TAGS = "tags.csv"
MOVIES = "movies.csv"
REQUIRED_FILES = (RATINGS, TAGS, MOVIES)
EXPECTED_HEADERS: dict[str, list[str]] = {
    RATINGS: ["userId", "movieId", "rating", "timestamp"],
    TAGS: ["userId", "movieId", "tag", "timestamp"],
    MOVIES: ["movieId", "title", "genres"],
}
NO_GENRE = "(no genres listed)"
RATE_EVENT = "rate"
TAG_EVENT = "tag"
_DOWNLOAD_CHUNK_BYTES = 1 << 20
_DOWNLOAD_TIMEOUT_SECONDS = 60.0


class DownloadError(InterestDecayError):
    """The MovieLens download failed or does not match its pinned checksums."""


def is_movielens_folder(folder: Path) -> bool:
    """Return whether ``folder`` contains ratings.csv and movies.csv."""
    return (folder / RATINGS).is_file() and (folder / MOVIES).is_file()


def load_movielens(folder: Path) -> SourceData:
    """Load ratings, tags and genres from an ml-latest-small folder.

    Parameters
    ----------
    folder:
        A folder with ratings.csv, tags.csv and movies.csv as GroupLens
        ships them.

    Returns
    -------
    SourceData
        Canonical events (one per rating or tag and genre, sorted by
        timestamp then user), source ``"movielens"``, and the SHA-256 and
        row count of each file read.

    Raises
    ------
    InputContractError
        If a file is missing, has other columns than the GroupLens ones, or
        a rating or tag refers to a movie absent from movies.csv.
    """
    folder = Path(folder)
    for name in REQUIRED_FILES:
        _check_header(folder / name)

    ratings = pd.read_csv(
        folder / RATINGS,
        dtype={"userId": "int64", "movieId": "int64", "rating": "float64",
               "timestamp": "int64"},
    )
    tags = pd.read_csv(
        folder / TAGS,
        usecols=["userId", "movieId", "timestamp"],
        dtype={"userId": "int64", "movieId": "int64", "timestamp": "int64"},
    )
    movies = pd.read_csv(folder / MOVIES, usecols=["movieId", "genres"],
                         dtype={"movieId": "int64", "genres": "str"})
    genres = _genres_by_movie(movies, folder / MOVIES)

    rated = _to_events(ratings, RATE_EVENT, ratings["rating"])
    tagged = _to_events(tags, TAG_EVENT, 1.0)
    events = pd.concat([rated, tagged], ignore_index=True)
    events = _explode_genres(events, genres, folder)
    events = events.sort_values([TIMESTAMP, USER_ID], kind="mergesort",
                                ignore_index=True)

    files = [
        file_fingerprint(folder / RATINGS, rows=len(ratings)),
        file_fingerprint(folder / TAGS, rows=len(tags)),
        file_fingerprint(folder / MOVIES, rows=len(movies)),
    ]
    return SourceData(events=events, source="movielens", files=files)


def _check_header(path: Path) -> None:
    if not path.is_file():
        raise InputContractError(
            f"MovieLens file {path} not found; expected {', '.join(REQUIRED_FILES)} "
            f"in {path.parent}, as in the ml-latest-small zip from GroupLens",
            source=str(path),
        )
    with path.open("r", encoding="utf-8", newline="") as handle:
        first_line = handle.readline()
    found = first_line.rstrip("\r\n").split(",")
    expected = EXPECTED_HEADERS[path.name]
    if found != expected:
        raise InputContractError(
            f"MovieLens file {path} has header {found}, expected {expected}; "
            f"use the unmodified ml-latest-small files from GroupLens",
            source=str(path),
            row=0,
        )


def _genres_by_movie(movies: pd.DataFrame, path: Path) -> pd.Series:
    """Return one row per (movie, genre), indexed by movieId."""
    if not movies["movieId"].is_unique:
        duplicated = movies.loc[movies["movieId"].duplicated(), "movieId"]
        raise InputContractError(
            f"MovieLens file {path} lists movieId {int(duplicated.iloc[0])} more "
            f"than once; expected one row per movie",
            source=str(path),
        )
    # "(no genres listed)" contains no "|", so it stays one topic.
    genres = movies.set_index("movieId")["genres"].fillna(NO_GENRE).str.split("|")
    return genres.explode()


def _to_events(frame: pd.DataFrame, event_type: str, value: object) -> pd.DataFrame:
    return pd.DataFrame({
        USER_ID: frame["userId"].astype(str),
        "movieId": frame["movieId"],
        EVENT_TYPE: event_type,
        TIMESTAMP: frame[TIMESTAMP].astype("int64"),
        VALUE: value,
    }).astype({VALUE: "float64"})


def _explode_genres(
    events: pd.DataFrame, genres: pd.Series, folder: Path
) -> pd.DataFrame:
    unknown = ~events["movieId"].isin(genres.index)
    if unknown.any():
        movie_id = int(events.loc[unknown, "movieId"].iloc[0])
        raise InputContractError(
            f"MovieLens folder {folder}: {int(unknown.sum())} ratings or tags refer "
            f"to movies missing from {MOVIES}, for example movieId {movie_id}; "
            f"use the ratings, tags and movies files of the same release",
            source=str(folder / MOVIES),
        )
    joined = events.join(genres.rename(TOPIC), on="movieId", how="inner")
    joined[ITEM_ID] = joined.pop("movieId").astype(str)
    return joined[[USER_ID, TOPIC, EVENT_TYPE, TIMESTAMP, VALUE, ITEM_ID]]


def ensure_movielens(
    dest: Path,
    *,
    url: str = MOVIELENS_URL,
    sha256: str | None = ZIP_SHA256,
    file_sha256: dict[str, str] | None = None,
) -> Path:
    """Return the ml-latest-small folder under ``dest``, downloading it if absent.

    A folder ``dest/ml-latest-small`` that already has ratings.csv,
    tags.csv and movies.csv is used as it is. Otherwise the zip at ``url``
    is downloaded to a temporary file and its files are extracted to a
    temporary folder beside the target. Each file is checked against
    ``file_sha256``, and the folder is renamed into place only when all of
    them match, so a failed download leaves nothing behind.

    Parameters
    ----------
    dest:
        The data folder, for example ``data``; created if needed.
    url:
        Where to download the zip from.
    sha256:
        Expected SHA-256 of the zip; ``None`` skips the check of the zip,
        but not the per-file checks.
    file_sha256:
        Expected SHA-256 per file name in the zip; defaults to the sums of
        the 2018-09-26 release.

    Returns
    -------
    Path
        The folder with the MovieLens files.

    Raises
    ------
    DownloadError
        If the download fails, is not a zip, lacks a file, or a checksum
        does not match.
    """
    dest = Path(dest)
    folder = dest / FOLDER_NAME
    if all((folder / name).is_file() for name in REQUIRED_FILES):
        logger.info("using MovieLens files in %s", folder)
        return folder
    expected_files = FILE_SHA256 if file_sha256 is None else file_sha256
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=dest))
    try:
        archive = staging / f"{FOLDER_NAME}.zip"
        logger.info("downloading MovieLens from %s", url)
        digest = _download(url, archive)
        if sha256 is not None and digest != sha256:
            raise DownloadError(
                f"download from {url} has SHA-256 {digest}, expected {sha256}; "
                f"the file is corrupt or has changed upstream, so it was deleted"
            )
        extracted = staging / FOLDER_NAME
        _extract_checked(archive, extracted, expected_files, url)
        if folder.exists():
            # An incomplete folder from an earlier copy is replaced whole.
            shutil.rmtree(folder)
        extracted.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("MovieLens files ready in %s", folder)
    return folder


def _download(url: str, target: Path) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_SECONDS) as response:
            with target.open("wb") as out:
                while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(
            f"download of {url} failed: {error}; check the network, or put the "
            f"unzipped {FOLDER_NAME} folder in {target.parent.parent}"
        ) from error
    return digest.hexdigest()


def _extract_checked(
    archive: Path, target: Path, expected: dict[str, str], url: str
) -> None:
    """Extract the expected members only, so no path in the zip is trusted."""
    target.mkdir()
    try:
        with zipfile.ZipFile(archive) as zipped:
            for name, sha256 in expected.items():
                member = f"{FOLDER_NAME}/{name}"
                try:
                    data = zipped.read(member)
                except KeyError as error:
                    raise DownloadError(
                        f"download from {url} has no {member}; expected the "
                        f"ml-latest-small zip from GroupLens"
                    ) from error
                digest = hashlib.sha256(data).hexdigest()
                if digest != sha256:
                    raise DownloadError(
                        f"{member} from {url} has SHA-256 {digest}, expected "
                        f"{sha256}; the download is corrupt or the release "
                        f"changed, so it was deleted"
                    )
                (target / name).write_bytes(data)
    except zipfile.BadZipFile as error:
        raise DownloadError(
            f"download from {url} is not a valid zip file ({error}); it was "
            f"deleted, try again"
        ) from error
