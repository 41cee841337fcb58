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

S3 URL-encodes object keys in all of these (``+`` for a space, ``%2B`` for
a plus, ``%C3%A4`` for ``ä``), so every key is decoded here, before any S3
call sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
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
class BatchInvocation:
    """An S3 Batch Operations invocation: its ids and one task per object."""

    schema_version: str
    invocation_id: str
    job_id: str
    tasks: tuple[ObjectRef, ...]
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


def is_batch_invocation(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is an S3 Batch Operations invocation."""
    return "invocationSchemaVersion" in event and "tasks" in event


def parse_batch_invocation(event: Mapping[str, Any]) -> BatchInvocation:
    """Parse an S3 Batch Operations invocation (schema 1.0 or 2.0).

    Parameters
    ----------
    event:
        The invocation as Lambda passes it to the handler.

    Returns
    -------
    BatchInvocation
        The ids to echo in the response and one decoded ``ObjectRef`` per
        task, in order.

    Raises
    ------
    EventFormatError
        If the schema version is unknown or a task lacks its key or bucket.
    """
    version = str(event.get("invocationSchemaVersion"))
    if version not in BATCH_SCHEMA_VERSIONS:
        raise EventFormatError(
            f"S3 Batch Operations invocationSchemaVersion {version!r} is not "
            f"supported; expected one of {', '.join(BATCH_SCHEMA_VERSIONS)}"
        )
    job = event.get("job") or {}
    tasks = tuple(_batch_task(task) for task in event["tasks"])
    return BatchInvocation(
        schema_version=version,
        invocation_id=str(event.get("invocationId", "")),
        job_id=str(job.get("id", "")),
        tasks=tasks,
        user_arguments=dict(job.get("userArguments") or {}),
    )


def parse_notification(event: Mapping[str, Any]) -> list[ObjectRef]:
    """Parse an S3, SQS, SNS or EventBridge event into its object records.

    Parameters
    ----------
    event:
        The event as Lambda passes it to the handler.

    Returns
    -------
    list[ObjectRef]
        Every record of the event, in order, including ones that are not
        object-created (see ``ObjectRef.is_created``). An ``s3:TestEvent``
        gives an empty list.

    Raises
    ------
    EventFormatError
        If the event, or a message inside it, has an unknown shape.
    """
    return list(_records(event, message_id=None))


def _records(event: Mapping[str, Any], message_id: str | None) -> Iterator[ObjectRef]:
    if event.get("Event") == "s3:TestEvent":
        return
    if event.get("source") == "aws.s3" and "detail" in event:
        yield _eventbridge_record(event, message_id)
        return
    if event.get("Type") == "Notification" and "Message" in event:
        # An SNS envelope, as SQS receives it from a topic.
        yield from _records(_json_message(event["Message"], "SNS message"), message_id)
        return
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventFormatError(
            f"event has no 'Records' list and is not an EventBridge S3 event "
            f"(top-level keys: {sorted(event)}); expected an S3 notification, "
            f"SQS, SNS, EventBridge or S3 Batch Operations event"
        )
    for record in records:
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:s3":
            yield _s3_record(record, message_id)
        elif source == "aws:sqs":
            body = _json_message(record.get("body"), "SQS message body")
            yield from _records(body, record.get("messageId"))
        elif source == "aws:sns":
            message = _json_message(record.get("Sns", {}).get("Message"), "SNS message")
            yield from _records(message, message_id)
        else:
            raise EventFormatError(
                f"event record has eventSource {source!r}; expected aws:s3, "
                f"aws:sqs or aws:sns"
            )


def _s3_record(record: Mapping[str, Any], message_id: str | None) -> ObjectRef:
    s3 = record.get("s3") or {}
    obj = s3.get("object") or {}
    bucket = (s3.get("bucket") or {}).get("name")
    if not bucket or "key" not in obj:
        raise EventFormatError(
            f"S3 event record lacks s3.bucket.name or s3.object.key "
            f"(eventName {record.get('eventName')!r}); the record is malformed"
        )
    return ObjectRef(
        bucket=bucket,
        key=decode_key(obj["key"]),
        event_name=str(record.get("eventName", "")),
        version_id=obj.get("versionId") or None,
        etag=_unquote_etag(obj.get("eTag")),
        size=obj.get("size"),
        message_id=message_id,
    )


def _eventbridge_record(event: Mapping[str, Any], message_id: str | None) -> ObjectRef:
    detail = event["detail"]
    obj = detail.get("object") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    if not bucket or "key" not in obj:
        raise EventFormatError(
            f"EventBridge S3 event {event.get('id')!r} lacks detail.bucket.name "
            f"or detail.object.key; the event is malformed"
        )
    return ObjectRef(
        bucket=bucket,
        key=decode_key(obj["key"]),
        event_name=str(event.get("detail-type", "")),
        version_id=obj.get("version-id") or None,
        etag=_unquote_etag(obj.get("etag")),
        size=obj.get("size"),
        message_id=message_id,
    )


def _batch_task(task: Mapping[str, Any]) -> ObjectRef:
    bucket = task.get("s3Bucket")
    arn = task.get("s3BucketArn")
    if not bucket and arn:
        # Schema 1.0 names the bucket by ARN: arn:aws:s3:::bucket-name
        bucket = str(arn).rsplit(":", 1)[-1]
    if not bucket or "s3Key" not in task or "taskId" not in task:
        raise EventFormatError(
            f"S3 Batch Operations task {task.get('taskId')!r} lacks taskId, s3Key, "
            f"or s3Bucket/s3BucketArn; the invocation is malformed"
        )
    return ObjectRef(
        bucket=bucket,
        key=decode_key(task["s3Key"]),
        event_name=BATCH_EVENT_NAME,
        version_id=task.get("s3VersionId") or None,
        task_id=str(task["taskId"]),
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


def _unquote_etag(etag: Any) -> str | None:
    if not etag:
        return None
    return str(etag).strip('"')
