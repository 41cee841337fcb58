"""Unit tests of event parsing, on fixture files in the shapes AWS sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infer.events import (
    EventFormatError,
    InvalidRecord,
    decode_key,
    is_batch_invocation,
    parse_batch_invocation,
    parse_notification,
)

EVENTS_DIR = Path(__file__).resolve().parent / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("week+01/events.csv", "week 01/events.csv"),
        ("c%2B%2B.csv", "c++.csv"),
        ("tenant-%C3%A4/%C3%9Cbersicht+Q1.jsonl.gz", "tenant-ä/Übersicht Q1.jsonl.gz"),
        ("100%25+sure%2C+%281%29.csv", "100% sure, (1).csv"),
        ("plain/key.csv", "plain/key.csv"),
    ],
)
def test_decode_key(encoded: str, decoded: str) -> None:
    assert decode_key(encoded) == decoded


def test_decode_key_invalid_utf8() -> None:
    with pytest.raises(EventFormatError, match="not valid URL-encoded UTF-8"):
        decode_key("bad%FF.csv")


def test_s3_put_every_record() -> None:
    records = parse_notification(load("s3_put.json"))
    assert [r.key for r in records] == [
        "incoming/week 01/events.csv",
        "incoming/tenant-ä/Übersicht Q1.jsonl.gz",
    ]
    assert [r.bucket for r in records] == ["example-bucket", "example-bucket"]
    assert all(r.is_created for r in records)
    assert records[0].etag == "0123456789abcdef0123456789abcdef"
    assert records[0].size == 1024


def test_special_key_decoded() -> None:
    (record,) = parse_notification(load("s3_put_special_key.json"))
    assert record.key == "incoming/a+b (1)/100% sure, c++ ä.csv"


def test_sqs_wrapped_s3() -> None:
    records = parse_notification(load("sqs_s3_put.json"))
    assert [r.key for r in records] == [
        "incoming/week 01/events.csv",
        "incoming/tenant-ä/Übersicht Q1.jsonl.gz",
    ]
    assert {r.message_id for r in records} == {"059f36b4-87a3-44ab-83d2-661975561000"}


def test_sqs_sns_wrapped_s3() -> None:
    records = parse_notification(load("sqs_sns_s3_put.json"))
    assert [r.key for r in records] == [
        "incoming/week 01/events.csv",
        "incoming/tenant-ä/Übersicht Q1.jsonl.gz",
    ]


def test_eventbridge() -> None:
    (record,) = parse_notification(load("eventbridge_object_created.json"))
    assert record.key == "incoming/week 01/events.csv"
    assert record.bucket == "example-bucket"
    assert record.is_created


def test_sqs_wrapped_eventbridge() -> None:
    (record,) = parse_notification(load("sqs_eventbridge.json"))
    assert record.key == "incoming/week 01/events.csv"


def test_test_event_has_no_records() -> None:
    assert parse_notification(load("s3_test_event.json")) == []


def test_delete_not_created() -> None:
    (record,) = parse_notification(load("s3_delete.json"))
    assert not record.is_created


def test_unknown_event_rejected() -> None:
    (record,) = parse_notification({"hello": "world"})
    assert isinstance(record, InvalidRecord)
    assert "no 'Records' list" in record.reason


def test_unknown_record_source_rejected() -> None:
    (record,) = parse_notification({"Records": [{"eventSource": "aws:dynamodb"}]})
    assert isinstance(record, InvalidRecord)
    assert "eventSource 'aws:dynamodb'" in record.reason


def test_sqs_body_not_json() -> None:
    event = {"Records": [{"eventSource": "aws:sqs", "messageId": "1", "body": "hi"}]}
    (record,) = parse_notification(event)
    assert record == InvalidRecord(
        "SQS message body is not JSON (Expecting value: line 1 column 1 (char 0)); "
        "expected an S3 notification or an EventBridge S3 event",
        message_id="1",
    )


def test_sqs_bad_body_beside_good() -> None:
    event = load("sqs_s3_put.json")
    event["Records"].insert(0, {"eventSource": "aws:sqs", "messageId": "x",
                                "body": "not json"})
    records = parse_notification(event)
    assert [type(r).__name__ for r in records] == [
        "InvalidRecord", "ObjectRef", "ObjectRef"
    ]


def test_broken_record_beside_good() -> None:
    event = load("s3_put.json")
    event["Records"][0]["s3"]["object"].pop("key")
    records = parse_notification(event)
    assert isinstance(records[0], InvalidRecord)
    assert records[1].key == "incoming/tenant-ä/Übersicht Q1.jsonl.gz"


@pytest.mark.parametrize(
    "event",
    [None, [], 7, "text", {"Records": [None, 3]}, {"Records": "x"},
     {"Records": [{"eventSource": "aws:s3", "s3": []}]},
     {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"},
                                                   "object": {"key": 12}}}]},
     {"Records": [{"eventSource": "aws:sns", "Sns": None}]},
     {"source": "aws.s3", "detail": None}],
)
def test_wrong_types_invalid(event: Any) -> None:
    records = parse_notification(event)
    assert records
    assert all(isinstance(r, InvalidRecord) for r in records)


def test_batch_null_tasks_rejected() -> None:
    event = load("batch_operations_v2.json") | {"tasks": None}
    with pytest.raises(EventFormatError, match="'tasks' of type NoneType"):
        parse_batch_invocation(event)


def test_batch_bad_task_alone() -> None:
    event = load("batch_operations_v2.json")
    event["tasks"][1]["s3Key"] = 5
    tasks = parse_batch_invocation(event).tasks
    assert [type(t).__name__ for t in tasks] == [
        "ObjectRef", "InvalidRecord", "ObjectRef"
    ]
    assert tasks[1].task_id == "dGFza2lkZ29lc2hlcmUy"


def test_not_a_mapping_not_batch() -> None:
    assert not is_batch_invocation(None)


def test_batch_v1_bucket_from_arn() -> None:
    event = load("batch_operations_v1.json")
    assert is_batch_invocation(event)
    invocation = parse_batch_invocation(event)
    assert invocation.schema_version == "1.0"
    assert invocation.invocation_id == event["invocationId"]
    (task,) = invocation.tasks
    assert task.bucket == "example-bucket"
    assert task.key == "incoming/week 01/events.csv"
    assert task.task_id == "dGFza2lkZ29lc2hlcmUK"
    assert task.version_id is None


def test_batch_v2_tasks() -> None:
    invocation = parse_batch_invocation(load("batch_operations_v2.json"))
    assert invocation.schema_version == "2.0"
    assert invocation.user_arguments == {"reason": "backfill"}
    assert [t.key for t in invocation.tasks] == [
        "incoming/tenant-ä/Übersicht Q1.jsonl.gz",
        "incoming/batch/malformed.csv",
        "incoming/batch/missing.csv",
    ]
    assert all(t.is_created for t in invocation.tasks)


def test_batch_unknown_schema_rejected() -> None:
    event = load("batch_operations_v2.json") | {"invocationSchemaVersion": "3.0"}
    with pytest.raises(EventFormatError, match="invocationSchemaVersion '3.0'"):
        parse_batch_invocation(event)


def test_notification_not_batch() -> None:
    assert not is_batch_invocation(load("s3_put.json"))
