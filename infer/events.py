"""Parse the events that invoke the cloud function into object references.

Supported shapes, as AWS delivers them:

- S3 event notifications (``{"Records": [{"eventSource": "aws:s3", ...}]}``),
  every record, not only the first;
- the same notification inside SQS messages (``eventSource: aws:sqs``, the
  notification is the message body), also when SNS sits in between;
- the same notification delivered by SNS to the function directly;
- EventBridge events from S3 (``source: aws.s3``, ``detail-type: Object
  Created``), directly or inside SQS messages;
- S3 Batch Operations invocations, schema 1.0 (bucket ARN) and 2.0 (bucket
  name), which expect one result code per task in the response.

Records are parsed one by one: a record, SQS message or task that cannot
be parsed becomes an ``InvalidRecord`` with the reason, and the records
beside it are still returned.

S3 URL-encodes object keys in all of these (``+`` for a space, ``%2B`` for
a plus, ``%C3%A4`` for ``ä``), so every key is decoded here, before any S3
call uses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from infer.errors import InterestDecayError

# Event names of object-created records; anything else (removals, restores,
# the s3:TestEvent sent when a notification is configured) is ignored.
S3_CREATED_PREFIX = "ObjectCreated:"
EVENTBRIDGE_CREATED = "Object Created"
BATCH_EVENT_NAME = "BatchOperations"

BATCH_SCHEMA_VERSIONS: tuple[str, ...] = ("1.0", "2.0")


class EventFormatError(InterestDecayError):
    """An invocation event has a shape this function does not accept."""


@dataclass(frozen=True)
class ObjectRef:
    """One object named by an event, with its key already URL-decoded.

    ``etag`` is without quotes. ``message_id`` is the SQS message the record
    came in, and ``task_id`` the Batch Operations task, when there is one.
    """

    bucket: str
    key: str
    event_name: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    message_id: str | None = None
    task_id: str | None = None

    @property
    def is_created(self) -> bool:
        """Whether the record announces a new object (or is a backfill task)."""
        return (
            self.event_name.startswith(S3_CREATED_PREFIX)
            or self.event_name == EVENTBRIDGE_CREATED
            or self.event_name == BATCH_EVENT_NAME
        )


@dataclass(frozen=True)
class InvalidRecord:
    """A record or task of an event that could not be parsed, and why.

    ``message_id`` (SQS) and ``task_id`` (Batch Operations) name where it
    came from, when the event contains it.
    """

    reason: str
    message_id: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class BatchInvocation:
    """An S3 Batch Operations invocation: its ids and one task per object."""

    schema_version: str
    invocation_id: str
    job_id: str
    tasks: tuple[ObjectRef | InvalidRecord, ...]
    user_arguments: dict[str, str] = field(default_factory=dict)


def decode_key(key: str) -> str:
    """Decode an object key as S3 writes it into events.

    Raises
    ------
    EventFormatError
        If the escapes do not decode as UTF-8.
    """
    try:
        return unquote_plus(key, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise EventFormatError(
            f"object key {key!r} in the event is not valid URL-encoded UTF-8: "
            f"{error}; S3 sends keys URL-encoded, check what produced this event"
        ) from error


def is_batch_invocation(event: Any) -> bool:
    """Return True if ``event`` is an S3 Batch Operations invocation."""
    return (
        isinstance(event, Mapping)
        and "invocationSchemaVersion" in event
        and "tasks" in event
    )


def is_sqs_event(event: Any) -> bool:
    """Return True if ``event`` is a batch of SQS messages (partial failure allowed)."""
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        return False
    return any(
        isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs"
        for record in event["Records"]
    )


def parse_batch_invocation(event: Mapping[str, Any]) -> BatchInvocation:
    """Parse an S3 Batch Operations invocation (schema 1.0 or 2.0).

    Parameters
    ----------
    event:
        The invocation as Lambda passes it to the handler.

    Returns
    -------
    BatchInvocation
        The ids to echo in the response and, in order, one decoded
        ``ObjectRef`` per task, or an ``InvalidRecord`` for a task that
        lacks its key, bucket or id.

    Raises
    ------
    EventFormatError
        If the schema version is unknown or ``tasks`` is not a list.
    """
    version = str(event.get("invocationSchemaVersion"))
    if version not in BATCH_SCHEMA_VERSIONS:
        raise EventFormatError(
            f"S3 Batch Operations invocationSchemaVersion {version!r} is not "
            f"supported; expected one of {', '.join(BATCH_SCHEMA_VERSIONS)}"
        )
    tasks = event.get("tasks")
    if not isinstance(tasks, list):
        raise EventFormatError(
            f"S3 Batch Operations invocation has 'tasks' of type "
            f"{type(tasks).__name__}, expected a list; the invocation is malformed"
        )
    job = _mapping(event.get("job"))
    return BatchInvocation(
        schema_version=version,
        invocation_id=str(event.get("invocationId", "")),
        job_id=str(job.get("id", "")),
        tasks=tuple(_batch_task(task) for task in tasks),
        user_arguments={
            str(name): str(value)
            for name, value in _mapping(job.get("userArguments")).items()
        },
    )


def parse_notification(event: Any) -> list[ObjectRef | InvalidRecord]:
    """Parse an S3, SQS, SNS or EventBridge event into its object records.

    A record that cannot be parsed becomes an ``InvalidRecord`` in its
    place, so that one malformed record, or one SQS message whose body is
    not JSON, does not stop the others.

    Parameters
    ----------
    event:
        The event as Lambda passes it to the handler.

    Returns
    -------
    list[ObjectRef | InvalidRecord]
        Every record of the event, in order, including ones that are not
        object-created (see ``ObjectRef.is_created``). An ``s3:TestEvent``
        gives an empty list; an event of unknown shape gives one
        ``InvalidRecord``.
    """
    return list(_records(event, message_id=None))


def _records(event: Any, message_id: str | None) -> Iterator[ObjectRef | InvalidRecord]:
    if not isinstance(event, Mapping):
        yield InvalidRecord(
            f"event is a JSON {type(event).__name__}, expected an object: an S3 "
            f"notification, SQS, SNS, EventBridge or S3 Batch Operations event",
            message_id=message_id,
        )
        return
    if event.get("Event") == "s3:TestEvent":
        return
    if event.get("source") == "aws.s3" and "detail" in event:
        yield _guarded(_eventbridge_record, event, message_id)
        return
    if event.get("Type") == "Notification" and "Message" in event:
        # An SNS envelope, as SQS receives it from a topic.
        yield from _message(event["Message"], "SNS message", message_id)
        return
    records = event.get("Records")
    if not isinstance(records, list):
        yield InvalidRecord(
            f"event has no 'Records' list and is not an EventBridge S3 event "
            f"(top-level keys: {sorted(map(str, event))}); expected an S3 "
            f"notification, SQS, SNS, EventBridge or S3 Batch Operations event",
            message_id=message_id,
        )
        return
    for record in records:
        yield from _record(record, message_id)


def _record(record: Any, message_id: str | None) -> Iterator[ObjectRef | InvalidRecord]:
    if not isinstance(record, Mapping):
        yield InvalidRecord(
            f"event record is a JSON {type(record).__name__}, expected an object",
            message_id=message_id,
        )
        return
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:s3":
        yield _guarded(_s3_record, record, message_id)
    elif source == "aws:sqs":
        inner_id = record.get("messageId")
        yield from _message(
            record.get("body"), "SQS message body",
            None if inner_id is None else str(inner_id),
        )
    elif source == "aws:sns":
        message = _mapping(record.get("Sns")).get("Message")
        yield from _message(message, "SNS message", message_id)
    else:
        yield InvalidRecord(
            f"event record has eventSource {source!r}; expected aws:s3, aws:sqs "
            f"or aws:sns",
            message_id=message_id,
        )


def _message(
    text: Any, what: str, message_id: str | None
) -> Iterator[ObjectRef | InvalidRecord]:
    try:
        message = _json_message(text, what)
    except EventFormatError as error:
        yield InvalidRecord(str(error), message_id=message_id)
        return
    yield from _records(message, message_id)


def _guarded(
    parse: Callable[[Mapping[str, Any], str | None], ObjectRef],
    record: Mapping[str, Any],
    message_id: str | None,
) -> ObjectRef | InvalidRecord:
    try:
        return parse(record, message_id)
    except EventFormatError as error:
        return InvalidRecord(str(error), message_id=message_id)


def _s3_record(record: Mapping[str, Any], message_id: str | None) -> ObjectRef:
    s3 = _mapping(record.get("s3"))
    obj = _mapping(s3.get("object"))
    bucket = _mapping(s3.get("bucket")).get("name")
    key = obj.get("key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str):
        raise EventFormatError(
            f"S3 event record lacks s3.bucket.name or s3.object.key as strings "
            f"(eventName {record.get('eventName')!r}, key {key!r}); the record "
            f"is malformed"
        )
    return ObjectRef(
        bucket=bucket,
        key=decode_key(key),
        event_name=str(record.get("eventName", "")),
        version_id=_optional_text(obj.get("versionId")),
        etag=_unquote_etag(obj.get("eTag")),
        size=_optional_int(obj.get("size")),
        message_id=message_id,
    )


def _eventbridge_record(event: Mapping[str, Any], message_id: str | None) -> ObjectRef:
    detail = _mapping(event["detail"])
    obj = _mapping(detail.get("object"))
    bucket = _mapping(detail.get("bucket")).get("name")
    key = obj.get("key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str):
        raise EventFormatError(
            f"EventBridge S3 event {event.get('id')!r} lacks detail.bucket.name "
            f"or detail.object.key as strings (key {key!r}); the event is "
            f"malformed"
        )
    return ObjectRef(
        bucket=bucket,
        key=decode_key(key),
        event_name=str(event.get("detail-type", "")),
        version_id=_optional_text(obj.get("version-id")),
        etag=_unquote_etag(obj.get("etag")),
        size=_optional_int(obj.get("size")),
        message_id=message_id,
    )


def _batch_task(task: Any) -> ObjectRef | InvalidRecord:
    if not isinstance(task, Mapping):
        return InvalidRecord(
            f"S3 Batch Operations task is a JSON {type(task).__name__}, expected "
            f"an object; the invocation is malformed"
        )
    task_id = _optional_text(task.get("taskId"))
    bucket = task.get("s3Bucket")
    arn = task.get("s3BucketArn")
    if not bucket and isinstance(arn, str):
        # Schema 1.0 names the bucket by ARN: arn:aws:s3:::bucket-name
        bucket = arn.rsplit(":", 1)[-1]
    key = task.get("s3Key")
    if task_id is None or not isinstance(bucket, str) or not bucket or not (
        isinstance(key, str)
    ):
        return InvalidRecord(
            f"S3 Batch Operations task {task_id!r} lacks taskId, s3Key, or "
            f"s3Bucket/s3BucketArn as strings (s3Key {key!r}); the task is "
            f"malformed",
            task_id=task_id,
        )
    try:
        decoded = decode_key(key)
    except EventFormatError as error:
        return InvalidRecord(str(error), task_id=task_id)
    return ObjectRef(
        bucket=bucket,
        key=decoded,
        event_name=BATCH_EVENT_NAME,
        version_id=_optional_text(task.get("s3VersionId")),
        task_id=task_id,
    )


def _json_message(text: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(text, str):
        raise EventFormatError(f"{what} is missing or not a string")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise EventFormatError(
            f"{what} is not JSON ({error}); expected an S3 notification or an "
            f"EventBridge S3 event"
        ) from error
    if not isinstance(message, dict):
        raise EventFormatError(
            f"{what} is JSON {type(message).__name__}, expected an object"
        )
    return message


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _optional_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unquote_etag(etag: Any) -> str | None:
    if not etag:
        return None
    return str(etag).strip('"')
