"""AWS Lambda entry point: score behaviour files dropped into an S3 bucket.

``lambda_handler`` accepts S3 object-created notifications (directly, in
SQS or SNS, or from EventBridge) and S3 Batch Operations invocations. For
every object under the input prefix it writes
``<OUTPUT_PREFIX><key relative to INPUT_PREFIX>.<OUTPUT_FORMAT>``, or, when
the file breaks the input contract, ``<ERROR_PREFIX><relative key>.json``.

Failure policy:

- an input-contract failure is reported (error object, log line) and not
  raised, because retrying the same bytes cannot succeed;
- a record, SQS message or task that cannot be parsed gets the outcome
  ``invalid_event``, logged at ERROR with the reason. It is not retried,
  and the records beside it are processed;
- any other failure (throttling, timeouts, a bad bundle) is logged with its
  traceback and raised after the other records of the event were
  processed, so Lambda retries the event and finally dead-letters it.
  Records scored by an earlier attempt are then skipped as duplicates.
- SQS batches get a partial batch response instead of the raise:
  ``batchItemFailures`` names the messages with such a failure, and only
  they are delivered again. This needs ``ReportBatchItemFailures`` on the
  event source mapping; without it Lambda deletes the whole batch.
- Batch Operations get one result code per task instead:
  ``PermanentFailure`` for contract failures, malformed tasks and missing
  objects, ``TemporaryFailure`` for the rest, which Batch Operations
  retries.
"""

from __future__ import annotations

import time

# Importing this module imports pandas, pyarrow and onnxruntime, the bulk
# of a Lambda cold start; the time is logged at the first invocation. It is
# near zero when another module imported them first (the watch command).
_IMPORT_STARTED = time.perf_counter()

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from infer import s3io  # noqa: E402
from infer.bundle import Bundle, load_bundle  # noqa: E402
from infer.errors import InputContractError  # noqa: E402
from infer.events import (  # noqa: E402
    BatchInvocation,
    EventFormatError,
    InvalidRecord,
    ObjectRef,
    is_batch_invocation,
    is_sqs_event,
    parse_batch_invocation,
    parse_notification,
)
from infer.output import write_scores  # noqa: E402
from infer.reader import read_events  # noqa: E402
from infer.scorer import score_events  # noqa: E402
from infer.settings import Settings  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - _IMPORT_STARTED

log = logging.getLogger(__name__)

# Outcomes of one record, as logged and returned.
SCORED = "scored"
DUPLICATE = "duplicate"
REJECTED = "rejected"
IGNORED = "ignored"
MISSING = "missing"
FAILED = "failed"
INVALID_EVENT = "invalid_event"
SUPERSEDED = "superseded"

# S3 Batch Operations result codes.
SUCCEEDED = "Succeeded"
TEMPORARY_FAILURE = "TemporaryFailure"
PERMANENT_FAILURE = "PermanentFailure"

LOG_MESSAGE = "object processed"

_state: dict[str, Any] = {"cold": True, "bundles": {}, "clients": {}}


@dataclass
class Outcome:
    """Result of one object of an event: one log line, one entry of the return value."""

    key: str | None
    bucket: str | None
    outcome: str
    reason: str | None = None
    output_key: str | None = None
    error_key: str | None = None
    etag: str | None = None
    version_id: str | None = None
    model_version: str | None = None
    rows: int | None = None
    rejected_rows: int | None = None
    users: int | None = None
    candidates: int | None = None
    unseen_event_types: dict[str, int] = field(default_factory=dict)
    ignored_before_lookback: int | None = None
    ignored_after_as_of: int | None = None
    seconds: float = 0.0
    task_id: str | None = None
    message_id: str | None = None


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Score every object named by ``event``; the Lambda entry point.

    Parameters
    ----------
    event:
        An S3, SQS, SNS or EventBridge notification, or an S3 Batch
        Operations invocation.
    context:
        The Lambda context (only ``aws_request_id`` is read); None works.

    Returns
    -------
    dict
        For notifications, ``{"records": [...]}`` with one outcome per
        record; for SQS batches also ``batchItemFailures``, the ids of the
        messages to deliver again. For Batch Operations, the response
        Batch Operations expects: ``invocationSchemaVersion``,
        ``treatMissingKeysAs``, ``invocationId`` and one ``results`` entry
        per task.

    Raises
    ------
    SettingsError
        If the environment variables are invalid (nothing is processed).
    Exception
        The first non-contract failure of a notification's records, after
        every record was processed; not for SQS batches, which report
        failed messages in ``batchItemFailures`` instead.
    """
    configure_logging()
    request_id = getattr(context, "aws_request_id", None)
    if _state["cold"]:
        _state["cold"] = False
        log.info("cold start", extra={"import_seconds": round(IMPORT_SECONDS, 3),
                                      "request_id": request_id})
    try:
        settings = Settings.from_env()
    except Exception:
        log.exception("invalid settings; no record processed",
                      extra={"request_id": request_id})
        raise
    client = s3_client()
    if is_batch_invocation(event):
        try:
            invocation = parse_batch_invocation(event)
        except EventFormatError as error:
            return _reject_batch(event, str(error), request_id)
        return _handle_batch(invocation, settings, client, request_id)
    return _handle_notification(event, settings, client, request_id)


def _handle_notification(
    event: Any, settings: Settings, client: Any, request_id: str | None
) -> dict[str, Any]:
    outcomes: list[Outcome] = []
    failures: list[tuple[Outcome, BaseException]] = []
    for parsed in parse_notification(event):
        if isinstance(parsed, InvalidRecord):
            outcomes.append(_invalid_logged(parsed, request_id))
            continue
        outcome, failure = _process_logged(parsed, settings, client, request_id)
        outcomes.append(outcome)
        if failure is not None:
            failures.append((outcome, failure))
    response: dict[str, Any] = {"records": [asdict(outcome) for outcome in outcomes]}
    sqs = is_sqs_event(event)
    if sqs and all(outcome.message_id for outcome, _ in failures):
        # Partial batch response: only the messages named here are
        # delivered again; the event source mapping must enable
        # ReportBatchItemFailures, or Lambda ignores the list.
        failed_ids = dict.fromkeys(outcome.message_id for outcome, _ in failures)
        response["batchItemFailures"] = [
            {"itemIdentifier": message_id} for message_id in failed_ids
        ]
        return response
    if failures:
        first = failures[0][1]
        first.add_note(
            f"{len(failures)} of {len(outcomes)} records failed; raised the first "
            f"so that the event is retried"
        )
        raise first
    return response


def _handle_batch(
    invocation: BatchInvocation, settings: Settings, client: Any, request_id: str | None
) -> dict[str, Any]:
    results = []
    for task in invocation.tasks:
        if isinstance(task, InvalidRecord):
            outcome = _invalid_logged(task, request_id)
        else:
            outcome, _ = _process_logged(task, settings, client, request_id)
        if outcome.task_id is None:
            continue  # S3 Batch Operations matches results by task id
        results.append({
            "taskId": outcome.task_id,
            "resultCode": _batch_result_code(outcome.outcome),
            "resultString": _batch_result_string(outcome),
        })
    return {
        "invocationSchemaVersion": invocation.schema_version,
        "treatMissingKeysAs": PERMANENT_FAILURE,
        "invocationId": invocation.invocation_id,
        "results": results,
    }


def _reject_batch(
    event: Mapping[str, Any], reason: str, request_id: str | None
) -> dict[str, Any]:
    # The invocation itself is malformed: every task that has an id gets
    # PermanentFailure, since retrying the same invocation cannot succeed.
    tasks = event.get("tasks")
    task_ids = [
        str(task["taskId"]) for task in (tasks if isinstance(tasks, list) else [])
        if isinstance(task, Mapping) and task.get("taskId") is not None
    ]
    if not task_ids:
        _invalid_logged(InvalidRecord(reason), request_id)
    results = []
    for task_id in task_ids:
        outcome = _invalid_logged(InvalidRecord(reason, task_id=task_id), request_id)
        results.append({
            "taskId": task_id,
            "resultCode": PERMANENT_FAILURE,
            "resultString": _batch_result_string(outcome),
        })
    return {
        "invocationSchemaVersion": str(event.get("invocationSchemaVersion")),
        "treatMissingKeysAs": PERMANENT_FAILURE,
        "invocationId": str(event.get("invocationId", "")),
        "results": results,
    }


def _invalid_logged(record: InvalidRecord, request_id: str | None) -> Outcome:
    outcome = Outcome(key=None, bucket=None, outcome=INVALID_EVENT,
                      reason=record.reason, task_id=record.task_id,
                      message_id=record.message_id)
    _log_outcome(outcome, request_id, None)
    return outcome


def _batch_result_code(outcome: str) -> str:
    if outcome in (SCORED, DUPLICATE, SUPERSEDED):
        return SUCCEEDED
    if outcome == FAILED:
        return TEMPORARY_FAILURE
    return PERMANENT_FAILURE


def _batch_result_string(outcome: Outcome) -> str:
    target = outcome.output_key or outcome.error_key
    text = f"{outcome.outcome}: {target}" if target else outcome.outcome
    return f"{text}: {outcome.reason}" if outcome.reason else text


def _process_logged(
    ref: ObjectRef, settings: Settings, client: Any, request_id: str | None
) -> tuple[Outcome, BaseException | None]:
    started = time.perf_counter()
    failure: BaseException | None = None
    try:
        outcome = process_object(ref, settings, client)
    except Exception as error:  # every record gets its turn; see module docstring
        failure = error
        outcome = Outcome(key=ref.key, bucket=ref.bucket, outcome=FAILED,
                          reason=f"{type(error).__name__}: {error}",
                          task_id=ref.task_id, message_id=ref.message_id)
    outcome.seconds = round(time.perf_counter() - started, 3)
    _log_outcome(outcome, request_id, failure)
    return outcome, failure


def _log_outcome(
    outcome: Outcome, request_id: str | None, failure: BaseException | None
) -> None:
    fields = {name: value for name, value in asdict(outcome).items()
              if value is not None and value != {}}
    fields["request_id"] = request_id
    if failure is not None:
        log.error(LOG_MESSAGE, extra=fields, exc_info=failure)
    elif outcome.outcome == INVALID_EVENT or (
        outcome.outcome == REJECTED and outcome.error_key is None
    ):
        # Nothing was written for these: the log line is the only report.
        log.error(LOG_MESSAGE, extra=fields)
    elif outcome.outcome in (REJECTED, MISSING):
        log.warning(LOG_MESSAGE, extra=fields)
    else:
        log.info(LOG_MESSAGE, extra=fields)


def process_object(ref: ObjectRef, settings: Settings, client: Any) -> Outcome:
    """Score one object and write its scores, or its error report.

    Parameters
    ----------
    ref:
        The object, with its key already URL-decoded.
    settings:
        Prefixes, output format, caps and model location.
    client:
        A boto3 S3 client.

    Returns
    -------
    Outcome
        One of:

        - ``scored``;
        - ``duplicate``: scores of this ETag, model and top-k exist;
        - ``rejected``: an error report was written, or one of this ETag
          and model exists, or an output key would pass S3's key length
          limit (nothing written);
        - ``superseded``: the event names a version that is no longer the
          current one;
        - ``ignored``: outside the input prefix, a folder placeholder, or
          not an object-created record;
        - ``missing``: the object is gone.

    Raises
    ------
    Exception
        Any failure other than the input contract: S3 errors, a bad bundle.
    """
    outcome = Outcome(key=ref.key, bucket=ref.bucket, outcome=IGNORED,
                      task_id=ref.task_id, message_id=ref.message_id)
    if settings.relative_key(ref.key) is None:
        outcome.reason = f"key is outside INPUT_PREFIX {settings.input_prefix!r}"
        return outcome
    if ref.key.endswith("/"):
        outcome.reason = "key ends in '/': a folder placeholder, not a file"
        return outcome
    if not ref.is_created:
        outcome.reason = f"event {ref.event_name!r} does not create an object"
        return outcome
    output_key = settings.output_key(ref.key)
    error_key = settings.error_key(ref.key)
    too_long = _key_length_problem(ref.key, output_key, error_key)
    if too_long is not None:
        outcome.outcome = REJECTED
        outcome.reason = too_long
        return outcome

    # The current object, not the version the event names: scoring an
    # older version would overwrite the scores of a newer one.
    source = s3io.head_object(client, ref.bucket, ref.key)
    if source is None:
        outcome.outcome = MISSING
        outcome.reason = "the object no longer exists"
        return outcome
    outcome.etag = source.etag
    outcome.version_id = source.version_id
    if ref.version_id and source.version_id and ref.version_id != source.version_id:
        outcome.outcome = SUPERSEDED
        outcome.reason = (
            f"the event names version {ref.version_id!r}, but the current version "
            f"is {source.version_id!r}; its own event scores the current version"
        )
        return outcome
    if ref.etag and ref.etag != source.etag:
        # Unversioned bucket: the object was replaced after the event; the
        # current content is scored, as the newer event would do.
        outcome.reason = (
            f"the event names ETag {ref.etag}, the object now has ETag "
            f"{source.etag}; the current object is processed"
        )

    bundle = get_bundle(settings, client)
    outcome.model_version = bundle.model_version
    existing = s3io.head_object(client, ref.bucket, output_key)
    if s3io.is_current_scores(existing, source.etag, bundle.model_version,
                              settings.top_k):
        outcome.outcome = DUPLICATE
        outcome.output_key = output_key
        return outcome
    report = s3io.head_object(client, ref.bucket, error_key)
    if s3io.is_current_output(report, source.etag, bundle.model_version):
        outcome.outcome = REJECTED
        outcome.error_key = error_key
        outcome.reason = (
            f"already rejected: {error_key} reports this ETag and model version; "
            f"upload a corrected file to score it"
        )
        _remove_stale_scores(client, ref.bucket, output_key, existing, source.etag)
        return outcome

    try:
        _score_object(ref, source, bundle, settings, client, outcome)
    except InputContractError as error:
        outcome.outcome = REJECTED
        outcome.reason = str(error)
        outcome.error_key = error_key
        s3io.write_error_report(
            client, ref.bucket, outcome.error_key,
            source_key=ref.key, reason=str(error), etag=source.etag,
            version_id=source.version_id, model_version=bundle.model_version,
            row=error.row,
        )
        _remove_stale_scores(client, ref.bucket, output_key, existing, source.etag)
    return outcome


def _key_length_problem(key: str, output_key: str, error_key: str) -> str | None:
    lengths = {name: s3io.key_bytes(value)
               for name, value in (("scores", output_key), ("error report", error_key))}
    too_long = {name: n for name, n in lengths.items() if n > s3io.MAX_KEY_BYTES}
    if not too_long:
        return None
    listed = ", ".join(f"{name} key {n} bytes" for name, n in too_long.items())
    excess = max(too_long.values()) - s3io.MAX_KEY_BYTES
    return (
        f"{key}: the input key is {s3io.key_bytes(key)} bytes of UTF-8 and its "
        f"output keys would pass S3's limit of {s3io.MAX_KEY_BYTES} bytes "
        f"({listed}); nothing was written; shorten the key by at least "
        f"{excess} bytes and upload it again"
    )


def _remove_stale_scores(
    client: Any, bucket: str, output_key: str, existing: s3io.ObjectInfo | None,
    source_etag: str,
) -> None:
    # Scores of an earlier upload of the same key describe a version that
    # is no longer current once the new upload is rejected.
    if existing is None or existing.metadata.get(s3io.META_SOURCE_ETAG) == source_etag:
        return
    client.delete_object(Bucket=bucket, Key=output_key)
    log.warning("stale scores deleted", extra={
        "bucket": bucket,
        "output_key": output_key,
        "stale_source_etag": existing.metadata.get(s3io.META_SOURCE_ETAG),
        "etag": source_etag,
    })


def _score_object(
    ref: ObjectRef,
    source: s3io.ObjectInfo,
    bundle: Bundle,
    settings: Settings,
    client: Any,
    outcome: Outcome,
) -> None:
    s3io.check_object_size(ref.key, source.size, settings.max_object_bytes)
    with s3io.open_object(
        client, ref.bucket, ref.key,
        etag=source.etag, version_id=source.version_id,
        stored_size=source.size, max_object_bytes=settings.max_object_bytes,
        max_ratio=settings.max_decompression_ratio,
    ) as opened:
        try:
            read = read_events(opened.source, name=opened.name, keep_item_id=False)
        except InputContractError as error:
            raise _with_real_key(error, opened.name, ref.key) from error
    outcome.rows = read.rows

    outcome.rejected_rows = read.rejected_rows
    result = score_events(read.events, bundle, top_k=settings.top_k)
    del read
    stats = result.stats
    outcome.users = stats.users
    outcome.candidates = stats.candidates
    outcome.unseen_event_types = dict(stats.unseen_event_types)
    # Events outside the scoring window, when the scorer counts them.
    outcome.ignored_before_lookback = stats.ignored_before_lookback
    outcome.ignored_after_as_of = stats.ignored_after_as_of

    output_key = settings.output_key(ref.key)
    metadata = s3io.output_metadata(
        source_etag=source.etag,
        source_version_id=source.version_id,
        model_version=bundle.model_version,
        rows=len(result.scores),
        as_of=stats.as_of,
        top_k=settings.top_k,
        extra={"events": str(outcome.rows), "users": str(outcome.users)},
    )
    with tempfile.TemporaryDirectory(prefix="scores-") as folder:
        path = os.path.join(folder, f"scores.{settings.output_format}")
        write_scores(result.scores, path, settings.output_format)
        s3io.upload_file(
            client, path, ref.bucket, output_key,
            content_type=s3io.CONTENT_TYPES[settings.output_format],
            metadata=metadata,
        )
    outcome.outcome = SCORED
    outcome.output_key = output_key
    _remove_stale_error_report(client, ref.bucket, settings.error_key(ref.key))


def _with_real_key(
    error: InputContractError, read_name: str, key: str
) -> InputContractError:
    # A .gz object is decompressed before the reader sees it, under its
    # name without .gz; the report must name the object that was uploaded.
    if read_name == key:
        return error
    message = str(error)
    if message.startswith(read_name):
        message = f"{key} (decompressed){message[len(read_name):]}"
    return InputContractError(message, source=key, row=error.row)


def _remove_stale_error_report(client: Any, bucket: str, error_key: str) -> None:
    # A report from an earlier, rejected upload of the same key would
    # contradict the scores just written.
    if s3io.head_object(client, bucket, error_key) is not None:
        client.delete_object(Bucket=bucket, Key=error_key)


def get_bundle(settings: Settings, client: Any) -> Bundle:
    """Return the model bundle, loading it at the first call of the container.

    A bundle under ``s3://`` is downloaded to the temporary folder first.
    ``load_bundle`` checks the ONNX file's SHA-256 against the manifest.

    Raises
    ------
    BundleError
        If the bundle is missing, corrupt or built for other feature code.
    """
    cache_key = (settings.model_uri, settings.ort_threads)
    bundles: dict[tuple[str, int], Bundle] = _state["bundles"]
    if cache_key in bundles:
        return bundles[cache_key]
    started = time.perf_counter()
    path = _local_model_path(settings.model_uri, client)
    bundle = load_bundle(path, threads=settings.ort_threads)
    bundles[cache_key] = bundle
    log.info("model loaded", extra={
        "model_uri": settings.model_uri,
        "model_version": bundle.model_version,
        "threads": settings.ort_threads,
        "seconds": round(time.perf_counter() - started, 3),
    })
    return bundle


def _local_model_path(model_uri: str, client: Any) -> str:
    if not model_uri.startswith("s3://"):
        return model_uri
    bucket, _, prefix = model_uri[len("s3://") :].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    target = tempfile.mkdtemp(prefix="model-")
    count = s3io.download_prefix(client, bucket, prefix, target)
    log.info("model downloaded", extra={"model_uri": model_uri, "files": count})
    return target


def s3_client() -> Any:
    """Return the S3 client of this container, created at first use.

    boto3 reads ``AWS_ENDPOINT_URL_S3`` itself; a client is kept per endpoint
    and region so that a changed environment gets a new client.
    """
    cache_key = (os.environ.get("AWS_ENDPOINT_URL_S3"),
                 os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    clients: dict[tuple[str | None, str | None], Any] = _state["clients"]
    if cache_key not in clients:
        clients[cache_key] = boto3.client(
            "s3", config=Config(retries={"mode": "standard"})
        )
    return clients[cache_key]


class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON object: fixed message plus its fields."""

    _standard = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in self._standard:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    # Looks up sys.stdout at each record, so a replaced stdout (tests, the
    # watch command's redirections) still receives the lines.
    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``infer`` loggers' records to stdout as JSON lines, once.

    The records do not propagate to the root logger, where the Lambda
    runtime would print each one a second time in its own format.
    """
    package_logger = logging.getLogger("infer")
    if any(isinstance(h, _StdoutHandler) for h in package_logger.handlers):
        return
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter())
    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    package_logger.propagate = False
