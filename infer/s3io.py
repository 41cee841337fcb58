"""S3 reads and writes of the cloud function.

Objects are read as streams: a gzip object is decompressed while it
streams, through a reader that counts stored and decompressed bytes and
stops at the configured caps, so that the body never sits in memory as one
``bytes`` beside the event columns. Parquet keeps its index at the end of
the file, so a Parquet object is copied to a temporary file first and read
from there.

Scores are written to a temporary file, then uploaded with metadata that
ties them to their input (ETag, version id), to the model version and to
the top-k setting; that metadata is what the duplicate check compares.
Error reports carry the input ETag and model version as metadata too, so
that an input already rejected by this model is not read again.

S3 user metadata travels in HTTP headers, which carry ASCII only, so
every value is percent-encoded on write (``%``, spaces, control and
non-ASCII characters; UTF-8 bytes) and decoded by ``head_object``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO
from urllib.parse import quote, unquote

from botocore.exceptions import ClientError

from infer.errors import InputContractError

log = logging.getLogger(__name__)

# Keys of the user metadata (x-amz-meta-*) written on every scores object.
META_SOURCE_ETAG = "source-etag"
META_SOURCE_VERSION_ID = "source-version-id"
META_MODEL_VERSION = "model-version"
META_ROWS = "rows"
META_AS_OF = "as-of"
META_TOP_K = "top-k"
# The top-k metadata value when every topic is kept.
ALL_TOPICS = "all"
# S3 rejects object keys longer than this many bytes of UTF-8.
MAX_KEY_BYTES = 1024
# S3 reports the version id "null" for objects written while versioning was
# off; a source with that version id, or none, gets no source-version-id.
NO_VERSION_ID = "null"

CONTENT_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "json": "application/json",
}

# The decompression ratio is checked only once this many bytes came out, so
# that a small, very repetitive file is never mistaken for a gzip bomb.
RATIO_FLOOR_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


@dataclass(frozen=True)
class ObjectInfo:
    """The ETag (without quotes) and size of an object, from a HEAD request."""

    etag: str
    size: int
    version_id: str | None
    metadata: Mapping[str, str]


def is_not_found(error: ClientError) -> bool:
    """Whether a client error means the object or version does not exist."""
    return str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES


def head_object(
    client: Any, bucket: str, key: str, version_id: str | None = None
) -> ObjectInfo | None:
    """Return the ETag, size, version id and metadata of an object.

    Returns
    -------
    ObjectInfo or None
        None when the object (or that version of it) does not exist.

    Raises
    ------
    botocore.exceptions.ClientError
        For every other S3 error (access denied, throttling, ...).
    """
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    try:
        response = client.head_object(**request)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    return ObjectInfo(
        etag=str(response["ETag"]).strip('"'),
        size=int(response["ContentLength"]),
        version_id=response.get("VersionId"),
        metadata={
            name: decode_metadata_value(value)
            for name, value in response.get("Metadata", {}).items()
        },
    )


def is_current_output(
    output: ObjectInfo | None, source_etag: str, model_version: str
) -> bool:
    """Return whether scores or an error report came from this input ETag and model.

    Both kinds of result carry ``source-etag`` and ``model-version`` metadata.
    """
    if output is None:
        return False
    return (
        output.metadata.get(META_SOURCE_ETAG) == source_etag
        and output.metadata.get(META_MODEL_VERSION) == model_version
    )


def is_current_scores(
    output: ObjectInfo | None, source_etag: str, model_version: str, top_k: int | None
) -> bool:
    """Return whether scores came from this input ETag, model and top-k setting.

    Scores written before ``top-k`` was recorded never match, so they are
    written again.
    """
    return is_current_output(output, source_etag, model_version) and (
        output is not None and output.metadata.get(META_TOP_K) == top_k_value(top_k)
    )


def top_k_value(top_k: int | None) -> str:
    """Return the ``top-k`` metadata value of a top-k setting."""
    return ALL_TOPICS if top_k is None else str(top_k)


def key_bytes(key: str) -> int:
    """Return the length of an object key in bytes of UTF-8, as S3 counts it."""
    return len(key.encode("utf-8", "surrogatepass"))


def check_object_size(key: str, size: int, max_object_bytes: int) -> None:
    """Reject an object larger than the configured maximum.

    Raises
    ------
    InputContractError
        If ``size`` is above ``max_object_bytes``.
    """
    if size > max_object_bytes:
        raise InputContractError(
            f"{key}: the object is {size} bytes, above the maximum of "
            f"{max_object_bytes} bytes (MAX_OBJECT_BYTES); split the file by "
            f"user into smaller files, or raise MAX_OBJECT_BYTES",
            source=key,
        )


class CappedGzipReader(io.RawIOBase):
    """A read-only stream that decompresses gzip from ``raw`` as it is read.

    It counts the stored bytes it takes from ``raw`` and the bytes it
    returns, and raises ``InputContractError`` once the decompressed size
    passes ``max_ratio`` times the stored size (only after
    ``RATIO_FLOOR_BYTES``), or the stored bytes pass ``max_stored_bytes``.
    Concatenated gzip members are read one after another, as ``gzip``
    does.
    """

    def __init__(
        self,
        raw: IO[bytes],
        *,
        name: str,
        stored_size: int,
        max_ratio: float,
        max_stored_bytes: int,
    ):
        self._raw = raw
        self._name = name
        self._stored_size = max(stored_size, 1)
        self._max_ratio = max_ratio
        self._max_stored_bytes = max_stored_bytes
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = b""
        self._eof = False
        self.stored_bytes = 0
        self.decompressed_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._eof:
            self._pending = self._inflate(len(view))
        data, self._pending = self._pending[: len(view)], self._pending[len(view) :]
        view[: len(data)] = data
        return len(data)

    def _inflate(self, limit: int) -> bytes:
        # Output per call is bounded by ``limit`` so that one small, highly
        # compressed chunk cannot expand into gigabytes at once.
        source = self._inflater.unconsumed_tail
        if not source:
            source = self._raw.read(_CHUNK_BYTES) or b""
            self.stored_bytes += len(source)
            self._check_stored()
            if not source:
                if not self._inflater.eof and self.stored_bytes > 0:
                    raise InputContractError(
                        f"{self._name}: the gzip stream ends early, after "
                        f"{self.stored_bytes} stored bytes; upload the complete "
                        f"file again",
                        source=self._name,
                    )
                self._eof = True
                return b""
        try:
            data = self._inflater.decompress(source, max(limit, 1))
        except zlib.error as error:
            raise InputContractError(
                f"{self._name}: the content is not valid gzip after "
                f"{self.stored_bytes} stored bytes ({error}); compress the file "
                f"with gzip, or remove .gz from its name",
                source=self._name,
            ) from error
        if self._inflater.eof and self._inflater.unused_data:
            # Another gzip member follows; start a fresh decompressor on it.
            rest = self._inflater.unused_data
            self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            data += self._inflater.decompress(rest, max(limit, 1))
        self.decompressed_bytes += len(data)
        self._check_ratio()
        return data

    def _check_stored(self) -> None:
        if self.stored_bytes > self._max_stored_bytes:
            raise InputContractError(
                f"{self._name}: the object streamed more than {self._max_stored_bytes} "
                f"bytes (MAX_OBJECT_BYTES); split the file by user into smaller "
                f"files, or raise MAX_OBJECT_BYTES",
                source=self._name,
            )

    def _check_ratio(self) -> None:
        limit = max(self._max_ratio * self._stored_size, RATIO_FLOOR_BYTES)
        if self.decompressed_bytes > limit:
            raise InputContractError(
                f"{self._name}: decompressed size passed {self.decompressed_bytes} "
                f"bytes from a {self._stored_size}-byte gzip object, more than "
                f"{self._max_ratio:g} times its stored size "
                f"(MAX_DECOMPRESSION_RATIO); this looks like a gzip bomb; upload "
                f"the file uncompressed or split it, or raise "
                f"MAX_DECOMPRESSION_RATIO if the data is really this repetitive",
                source=self._name,
            )


@dataclass
class OpenedObject:
    """A stream (or a spilled file) of an object's content, ready for the reader.

    ``name`` is the key without ``.gz`` when the stream is already
    decompressed, so the reader takes the format from it.
    """

    source: BinaryIO | str
    name: str
    gzip_reader: CappedGzipReader | None = None


@contextlib.contextmanager
def open_object(
    client: Any,
    bucket: str,
    key: str,
    *,
    etag: str,
    version_id: str | None,
    stored_size: int,
    max_object_bytes: int,
    max_ratio: float,
) -> Iterator[OpenedObject]:
    """Open an object for reading, decompressing gzip while it streams.

    Parameters
    ----------
    client:
        A boto3 S3 client.
    bucket, key:
        The object; ``key`` is already URL-decoded.
    etag:
        The ETag seen by the HEAD request; the GET is made with ``IfMatch``
        so that the bytes read belong to the object that was checked.
    version_id:
        The version to read, when the event names one.
    stored_size:
        The object's size, for the decompression ratio.
    max_object_bytes, max_ratio:
        The caps (``MAX_OBJECT_BYTES``, ``MAX_DECOMPRESSION_RATIO``).

    Yields
    ------
    OpenedObject
        A binary stream for CSV and JSON Lines, or the path of a temporary
        file for Parquet; the temporary file is removed on exit.

    Raises
    ------
    InputContractError
        If a cap is passed or the gzip content is invalid.
    botocore.exceptions.ClientError
        If the GET fails (throttling, a newer ETag, access denied, ...).
    """
    request: dict[str, Any] = {"Bucket": bucket, "Key": key, "IfMatch": f'"{etag}"'}
    if version_id:
        request["VersionId"] = version_id
    response = client.get_object(**request)
    body = response["Body"]
    try:
        if key.lower().endswith((".parquet", ".pq")):
            with _spill(body, key, max_object_bytes) as path:
                yield OpenedObject(source=path, name=key)
        elif key.lower().endswith(".gz"):
            reader = CappedGzipReader(
                body,
                name=key,
                stored_size=stored_size,
                max_ratio=max_ratio,
                max_stored_bytes=max_object_bytes,
            )
            stream = io.BufferedReader(reader, buffer_size=_CHUNK_BYTES)
            yield OpenedObject(source=stream, name=key[: -len(".gz")],
                               gzip_reader=reader)
        else:
            yield OpenedObject(source=body, name=key)
    finally:
        body.close()


@contextlib.contextmanager
def _spill(body: IO[bytes], key: str, max_object_bytes: int) -> Iterator[str]:
    suffix = os.path.splitext(key)[1]
    handle = tempfile.NamedTemporaryFile(prefix="object-", suffix=suffix, delete=False)
    try:
        with handle:
            copied = 0
            while chunk := body.read(_CHUNK_BYTES):
                copied += len(chunk)
                if copied > max_object_bytes:
                    check_object_size(key, copied, max_object_bytes)
                handle.write(chunk)
        yield handle.name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(handle.name)


def upload_file(
    client: Any,
    path: str,
    bucket: str,
    key: str,
    *,
    content_type: str,
    metadata: Mapping[str, str],
) -> None:
    """Upload a local file with metadata (multipart above boto3's threshold)."""
    client.upload_file(
        path,
        bucket,
        key,
        ExtraArgs={"ContentType": content_type, "Metadata": dict(metadata)},
    )


def output_metadata(
    *,
    source_etag: str,
    source_version_id: str | None,
    model_version: str,
    rows: int,
    as_of: int | None,
    top_k: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the user metadata of a scores object, values percent-encoded.

    ``source-version-id`` is left out when the source has no version id, or
    the id ``"null"`` of an object written while versioning was off.
    """
    metadata = {
        META_SOURCE_ETAG: source_etag,
        META_MODEL_VERSION: model_version,
        META_ROWS: str(rows),
        META_AS_OF: "" if as_of is None else _iso(as_of),
        META_TOP_K: top_k_value(top_k),
    }
    if source_version_id and source_version_id != NO_VERSION_ID:
        metadata[META_SOURCE_VERSION_ID] = source_version_id
    metadata.update(extra or {})
    return {name: encode_metadata_value(value) for name, value in metadata.items()}


def write_error_report(
    client: Any,
    bucket: str,
    key: str,
    *,
    source_key: str,
    reason: str,
    etag: str | None,
    version_id: str | None,
    model_version: str | None,
    row: int | None = None,
) -> dict[str, Any]:
    """Write a JSON error report for an object that breaks the input contract.

    The report object gets ``source-etag`` and ``model-version`` metadata,
    which ``is_current_output`` compares.

    Returns
    -------
    dict
        The report as written.
    """
    report = {
        "reason": reason,
        "key": source_key,
        "bucket": bucket,
        "etag": etag,
        "version_id": version_id,
        "row": row,
        "model_version": model_version,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    metadata = {META_SOURCE_ETAG: etag or "", META_MODEL_VERSION: model_version or ""}
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"),
        ContentType=CONTENT_TYPES["json"],
        Metadata={
            name: encode_metadata_value(value) for name, value in metadata.items()
        },
    )
    return report


def download_prefix(client: Any, bucket: str, prefix: str, target: str) -> int:
    """Download every object under ``prefix`` into the folder ``target``.

    Returns
    -------
    int
        The number of files downloaded.
    """
    count = 0
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if not relative or relative.endswith("/"):
                continue
            path = os.path.join(target, *relative.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            client.download_file(bucket, item["Key"], path)
            count += 1
    return count


def free_temp_bytes() -> int:
    """Return the free bytes of the temporary folder (/tmp in Lambda)."""
    return shutil.disk_usage(tempfile.gettempdir()).free


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(int(epoch_seconds), UTC).isoformat().replace(
        "+00:00", "Z"
    )


# Printable ASCII except "%" (the escape itself) stays as it is.
_METADATA_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


def encode_metadata_value(value: str) -> str:
    """Percent-encode a user metadata value so that it is printable ASCII.

    ``%``, spaces, control and non-ASCII characters become ``%XX`` escapes
    of their UTF-8 bytes; ETags, ISO times and numbers pass unchanged.
    """
    return quote(value, safe=_METADATA_SAFE, encoding="utf-8", errors="surrogatepass")


def decode_metadata_value(value: str) -> str:
    """Decode a value written by ``encode_metadata_value``."""
    return unquote(value, encoding="utf-8", errors="surrogatepass")
