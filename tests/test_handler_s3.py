"""Functional tests of the Lambda handler against the S3 API on loopback.

Objects are uploaded to a moto server over HTTP, the handler is invoked
with event fixtures in the shapes AWS sends (keys URL-encoded), and the
outputs are read back through the same API.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from infer import handler, s3io
from infer import settings as s
from infer.schema import OUTPUT_COLUMNS
from infer.settings import SettingsError
from infer.watch import notification_event
from train.simulate import SimulationConfig, simulate_events, write_events

EVENTS_DIR = Path(__file__).resolve().parent / "events"
EVENTS_CSV = "incoming/week 01/events.csv"
EVENTS_JSONL_GZ = "incoming/tenant-ä/Übersicht Q1.jsonl.gz"
MALFORMED_CSV = b"user_id,event_type,timestamp\nu1,view,1718000000\n"


def load_event(name: str, bucket: str) -> dict[str, Any]:
    """Load an event fixture with its placeholder bucket replaced."""
    text = (EVENTS_DIR / name).read_text(encoding="utf-8")
    return json.loads(text.replace("example-bucket", bucket))


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small behaviour files (CSV, JSON Lines gzip) of simulated events."""
    folder = tmp_path_factory.mktemp("samples")
    files = {}
    for seed, name in ((5, "events.csv"), (6, "events.jsonl.gz"), (7, "other.csv")):
        events = simulate_events(SimulationConfig(users=30, days=30, seed=seed))
        write_events(events, folder / name)
        files[name] = (folder / name).read_bytes()
    return files


@pytest.fixture(autouse=True)
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, trained_bundle: Path, s3_endpoint: str
) -> Iterator[None]:
    """Set the function's variables as a deployment would; forget loaded bundles."""
    for name in s.ENVIRONMENT_VARIABLES:
        if name != s.AWS_ENDPOINT_URL_S3:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(s.MODEL_URI, str(trained_bundle))
    monkeypatch.setenv(s.ORT_THREADS, "1")
    handler._state["bundles"].clear()
    yield
    handler._state["bundles"].clear()


def put(client: Any, bucket: str, key: str, body: bytes) -> str:
    """Upload an object; return its ETag without quotes."""
    return str(client.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]).strip('"')


def read_parquet(client: Any, bucket: str, key: str) -> pd.DataFrame:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(body))


def keys_under(client: Any, bucket: str, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def outcomes(result: dict[str, Any]) -> list[str]:
    return [record["outcome"] for record in result["records"]]


@pytest.mark.parametrize(
    "fixture", ["s3_put.json", "sqs_s3_put.json", "sqs_sns_s3_put.json"]
)
def test_put_event_scores_both(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes], fixture: str
) -> None:
    csv_etag = put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])

    result = handler.lambda_handler(load_event(fixture, bucket), None)

    assert outcomes(result) == ["scored", "scored"]
    assert keys_under(s3_client, bucket, "scores/") == [
        "scores/tenant-ä/Übersicht Q1.jsonl.gz.parquet",
        "scores/week 01/events.csv.parquet",
    ]
    scores = read_parquet(s3_client, bucket, "scores/week 01/events.csv.parquet")
    assert list(scores.columns) == list(OUTPUT_COLUMNS)
    assert len(scores) == result["records"][0]["candidates"]
    assert scores["interest"].between(0, 1).all()
    head = s3_client.head_object(Bucket=bucket, Key="scores/week 01/events.csv.parquet")
    assert head["Metadata"][s3io.META_SOURCE_ETAG] == csv_etag
    assert head["Metadata"][s3io.META_MODEL_VERSION] == scores["model_version"][0]
    assert head["Metadata"][s3io.META_ROWS] == str(len(scores))
    assert s3io.META_SOURCE_VERSION_ID not in head["Metadata"]
    assert head["Metadata"][s3io.META_AS_OF].endswith("Z")


def test_eventbridge_scores(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)
    result = handler.lambda_handler(event, None)
    assert outcomes(result) == ["scored"]
    assert keys_under(s3_client, bucket, "scores/") == [
        "scores/week 01/events.csv.parquet"
    ]


def test_special_key_scored(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    key = "incoming/a+b (1)/100% sure, c++ ä.csv"
    put(s3_client, bucket, key, sample_files["events.csv"])
    result = handler.lambda_handler(load_event("s3_put_special_key.json", bucket), None)
    assert outcomes(result) == ["scored"]
    assert keys_under(s3_client, bucket, "scores/") == [
        "scores/a+b (1)/100% sure, c++ ä.csv.parquet"
    ]


def test_csv_output_format(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(s.OUTPUT_FORMAT, "csv")
    monkeypatch.setenv(s.TOP_K, "2")
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    handler.lambda_handler(load_event("eventbridge_object_created.json", bucket), None)
    body = s3_client.get_object(Bucket=bucket, Key="scores/week 01/events.csv.csv")
    scores = pd.read_csv(body["Body"])
    assert body["ContentType"] == "text/csv"
    assert scores["rank"].max() == 2


def test_outside_prefix_ignored(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, "scores/week 01/events.csv.parquet", b"not scored")
    put(s3_client, bucket, "elsewhere/events.csv", sample_files["events.csv"])
    event = load_event("s3_put_outside_prefix.json", bucket)

    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["ignored", "ignored", "ignored"]
    assert keys_under(s3_client, bucket, "") == [
        "elsewhere/events.csv",
        "scores/week 01/events.csv.parquet",
    ]


def test_delete_event_ignored(s3_client: Any, bucket: str) -> None:
    result = handler.lambda_handler(load_event("s3_delete.json", bucket), None)
    assert outcomes(result) == ["ignored"]


def test_output_inside_input_fails_start(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(s.OUTPUT_PREFIX, "incoming/scores/")
    with pytest.raises(SettingsError) as caught:
        handler.lambda_handler(load_event("s3_put.json", bucket), None)
    assert str(caught.value) == (
        "OUTPUT_PREFIX='incoming/scores/' overlaps INPUT_PREFIX='incoming/', so "
        "the function's own writes would trigger it again; choose prefixes where "
        "neither starts with the other, such as 'incoming/' and 'scores/'"
    )


def test_redelivery_one_output(
    s3_client: Any, versioned_bucket: str, sample_files: dict[str, bytes]
) -> None:
    bucket = versioned_bucket
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)
    output_key = "scores/week 01/events.csv.parquet"

    first = handler.lambda_handler(event, None)
    before = s3_client.head_object(Bucket=bucket, Key=output_key)
    second = handler.lambda_handler(event, None)
    after = s3_client.head_object(Bucket=bucket, Key=output_key)

    assert outcomes(first) == ["scored"]
    assert outcomes(second) == ["duplicate"]
    assert after["ETag"] == before["ETag"]
    assert after["VersionId"] == before["VersionId"]
    versions = s3_client.list_object_versions(Bucket=bucket, Prefix="scores/")
    assert len(versions["Versions"]) == 1


def test_new_input_version_rescored(
    s3_client: Any, versioned_bucket: str, sample_files: dict[str, bytes]
) -> None:
    bucket = versioned_bucket
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)
    output_key = "scores/week 01/events.csv.parquet"
    handler.lambda_handler(event, None)

    new_etag = put(s3_client, bucket, EVENTS_CSV, sample_files["other.csv"])
    result = handler.lambda_handler(event, None)

    head = s3_client.head_object(Bucket=bucket, Key=output_key)
    assert outcomes(result) == ["scored"]
    assert head["Metadata"][s3io.META_SOURCE_ETAG] == new_etag
    assert head["Metadata"][s3io.META_SOURCE_VERSION_ID] != "null"


def test_malformed_middle_record_reported(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, "incoming/batch/first.csv", sample_files["events.csv"])
    bad_etag = put(s3_client, bucket, "incoming/batch/malformed.csv", MALFORMED_CSV)
    put(s3_client, bucket, "incoming/batch/third.csv", sample_files["other.csv"])

    result = handler.lambda_handler(
        load_event("s3_put_three_records.json", bucket), None
    )

    assert outcomes(result) == ["scored", "rejected", "scored"]
    assert keys_under(s3_client, bucket, "scores/") == [
        "scores/batch/first.csv.parquet",
        "scores/batch/third.csv.parquet",
    ]
    assert keys_under(s3_client, bucket, "errors/") == [
        "errors/batch/malformed.csv.json"
    ]
    body = s3_client.get_object(Bucket=bucket, Key="errors/batch/malformed.csv.json")
    report = json.loads(body["Body"].read())
    assert report["key"] == "incoming/batch/malformed.csv"
    assert report["etag"] == bad_etag
    assert "topic" in report["reason"]
    assert report["model_version"] == result["records"][0]["model_version"]
    assert report["time"].endswith("+00:00")


def test_fixed_file_clears_error_report(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    key = "incoming/batch/malformed.csv"
    event = load_event("s3_put_three_records.json", bucket)
    event["Records"] = event["Records"][1:2]
    put(s3_client, bucket, key, MALFORMED_CSV)
    handler.lambda_handler(event, None)

    put(s3_client, bucket, key, sample_files["events.csv"])
    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["scored"]
    assert keys_under(s3_client, bucket, "errors/") == []


def test_rejected_file_not_read_again(
    s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "incoming/batch/malformed.csv"
    event = load_event("s3_put_three_records.json", bucket)
    event["Records"] = event["Records"][1:2]
    put(s3_client, bucket, key, MALFORMED_CSV)
    handler.lambda_handler(event, None)
    first = s3_client.head_object(Bucket=bucket, Key="errors/batch/malformed.csv.json")
    opened: list[str] = []
    monkeypatch.setattr(s3io, "open_object", lambda *a, **k: opened.append(a[2]))

    result = handler.lambda_handler(event, None)

    again = s3_client.head_object(Bucket=bucket, Key="errors/batch/malformed.csv.json")
    assert outcomes(result) == ["rejected"]
    assert result["records"][0]["reason"].startswith("already rejected: ")
    assert opened == []
    assert again["ETag"] == first["ETag"]


def test_error_report_other_model_rereads(
    s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "incoming/batch/malformed.csv"
    event = load_event("s3_put_three_records.json", bucket)
    event["Records"] = event["Records"][1:2]
    put(s3_client, bucket, key, MALFORMED_CSV)
    s3io.write_error_report(
        s3_client, bucket, "errors/batch/malformed.csv.json", source_key=key,
        reason="old", etag="other", version_id=None, model_version="older-model",
    )

    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["rejected"]
    assert "topic" in result["records"][0]["reason"]


def _throttle_get(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    """Return S3's throttling error for each GetObject of the CSV key."""
    if kwargs["params"].get("url_path", "").find("events.csv") < 0:
        return None
    response = AWSResponse("http://127.0.0.1/", 503, {}, None)
    parsed = {
        "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
        "ResponseMetadata": {"HTTPStatusCode": 503},
    }
    return response, parsed


def test_throttling_raises_after_others(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])
    client = handler.s3_client()
    client.meta.events.register("before-call.s3.GetObject", _throttle_get)
    try:
        with pytest.raises(ClientError) as caught:
            handler.lambda_handler(load_event("s3_put.json", bucket), None)
    finally:
        client.meta.events.unregister("before-call.s3.GetObject", _throttle_get)

    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert keys_under(s3_client, bucket, "scores/") == [
        "scores/tenant-ä/Übersicht Q1.jsonl.gz.parquet"
    ]
    assert keys_under(s3_client, bucket, "errors/") == []


def test_throttling_logged_with_traceback(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)
    client = handler.s3_client()
    client.meta.events.register("before-call.s3.GetObject", _throttle_get)
    try:
        with pytest.raises(ClientError):
            handler.lambda_handler(event, None)
    finally:
        client.meta.events.unregister("before-call.s3.GetObject", _throttle_get)

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (failed,) = [line for line in lines if line.get("outcome") == "failed"]
    assert failed["message"] == handler.LOG_MESSAGE
    assert failed["level"] == "ERROR"
    assert failed["key"] == EVENTS_CSV
    assert "SlowDown" in failed["exception"]


def test_log_line_fields(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    handler.lambda_handler(load_event("eventbridge_object_created.json", bucket), None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (scored,) = [line for line in lines if line["message"] == handler.LOG_MESSAGE]
    for name in ("key", "etag", "rows", "users", "candidates", "model_version",
                 "seconds", "outcome"):
        assert name in scored, name
    assert scored["key"] == EVENTS_CSV
    assert scored["outcome"] == "scored"
    assert scored["ignored_before_lookback"] == 0
    assert scored["ignored_after_as_of"] == 0
    assert any(line["message"] == "model loaded" for line in lines)


def test_size_cap_rejected(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(s.MAX_OBJECT_BYTES, "1000")
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    result = handler.lambda_handler(
        load_event("eventbridge_object_created.json", bucket), None
    )
    assert outcomes(result) == ["rejected"]
    body = s3_client.get_object(Bucket=bucket, Key="errors/week 01/events.csv.json")
    assert "MAX_OBJECT_BYTES" in json.loads(body["Body"].read())["reason"]


def test_gzip_bomb_rejected(
    s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(s.MAX_DECOMPRESSION_RATIO, "20")
    line = b"u1,jazz,view,1718000000\n"
    bomb = gzip.compress(b"user_id,topic,event_type,timestamp\n" + line * 400_000)
    key = "incoming/tenant-ä/Übersicht Q1.jsonl.gz"
    put(s3_client, bucket, key, bomb)
    event = load_event("s3_put.json", bucket)
    event["Records"] = event["Records"][1:]

    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["rejected"]
    body = s3_client.get_object(
        Bucket=bucket, Key="errors/tenant-ä/Übersicht Q1.jsonl.gz.json"
    )
    assert "gzip bomb" in json.loads(body["Body"].read())["reason"]


def test_model_from_s3_uri(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    trained_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for path in trained_bundle.rglob("*"):
        if path.is_file():
            relative = path.relative_to(trained_bundle).as_posix()
            s3_client.upload_file(str(path), bucket, f"models/v1/{relative}")
    monkeypatch.setenv(s.MODEL_URI, f"s3://{bucket}/models/v1/")
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    result = handler.lambda_handler(
        load_event("eventbridge_object_created.json", bucket), None
    )
    assert outcomes(result) == ["scored"]


def test_batch_v1_succeeded(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("batch_operations_v1.json", bucket)

    response = handler.lambda_handler(event, None)

    assert response == {
        "invocationSchemaVersion": "1.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [{
            "taskId": "dGFza2lkZ29lc2hlcmUK",
            "resultCode": "Succeeded",
            "resultString": "scored: scores/week 01/events.csv.parquet",
        }],
    }


def test_batch_v2_result_per_task(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])
    put(s3_client, bucket, "incoming/batch/malformed.csv", MALFORMED_CSV)
    event = load_event("batch_operations_v2.json", bucket)

    response = handler.lambda_handler(event, None)

    assert response["invocationSchemaVersion"] == "2.0"
    assert response["invocationId"] == event["invocationId"]
    codes = [(r["taskId"], r["resultCode"]) for r in response["results"]]
    assert codes == [
        ("dGFza2lkZ29lc2hlcmUx", "Succeeded"),
        ("dGFza2lkZ29lc2hlcmUy", "PermanentFailure"),
        ("dGFza2lkZ29lc2hlcmUz", "PermanentFailure"),
    ]
    assert response["results"][2]["resultString"] == (
        "missing: the object no longer exists"
    )
    assert keys_under(s3_client, bucket, "scores/") == [
        "scores/tenant-ä/Übersicht Q1.jsonl.gz.parquet"
    ]


def test_batch_throttling_temporary(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    client = handler.s3_client()
    client.meta.events.register("before-call.s3.GetObject", _throttle_get)
    try:
        response = handler.lambda_handler(
            load_event("batch_operations_v1.json", bucket), None
        )
    finally:
        client.meta.events.unregister("before-call.s3.GetObject", _throttle_get)
    (result,) = response["results"]
    assert result["resultCode"] == "TemporaryFailure"
    assert "SlowDown" in result["resultString"]


def test_broken_record_beside_valid(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])
    event = load_event("s3_put.json", bucket)
    event["Records"][0]["s3"]["object"]["key"] = 12

    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["invalid_event", "scored"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (invalid,) = [line for line in lines if line.get("outcome") == "invalid_event"]
    assert invalid["level"] == "ERROR"
    assert "s3.object.key" in invalid["reason"]


def test_sqs_bad_body_beside_valid(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])
    event = load_event("sqs_s3_put.json", bucket)
    event["Records"].append({"eventSource": "aws:sqs", "messageId": "m-bad",
                             "body": "{not json"})

    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["scored", "scored", "invalid_event"]
    assert result["records"][2]["message_id"] == "m-bad"
    assert result["batchItemFailures"] == []


def test_sqs_partial_batch_failure(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])
    event = load_event("sqs_s3_put.json", bucket)
    body = json.loads(event["Records"][0]["body"])
    first, second = body["Records"]
    event["Records"] = [
        event["Records"][0] | {"messageId": "m-csv",
                               "body": json.dumps({"Records": [first]})},
        event["Records"][0] | {"messageId": "m-gz",
                               "body": json.dumps({"Records": [second]})},
    ]
    client = handler.s3_client()
    client.meta.events.register("before-call.s3.GetObject", _throttle_get)
    try:
        result = handler.lambda_handler(event, None)
    finally:
        client.meta.events.unregister("before-call.s3.GetObject", _throttle_get)

    assert outcomes(result) == ["failed", "scored"]
    assert result["batchItemFailures"] == [{"itemIdentifier": "m-csv"}]


@pytest.mark.parametrize("event", [None, [], {"Records": [None]}, 5])
def test_wrong_type_event_invalid(bucket: str, event: Any) -> None:
    result = handler.lambda_handler(event, None)
    assert outcomes(result) == ["invalid_event"]


def test_batch_bad_task_permanent(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_JSONL_GZ, sample_files["events.jsonl.gz"])
    event = load_event("batch_operations_v2.json", bucket)
    event["tasks"][1]["s3Key"] = None

    response = handler.lambda_handler(event, None)

    codes = [r["resultCode"] for r in response["results"]]
    assert codes == ["Succeeded", "PermanentFailure", "PermanentFailure"]
    assert response["results"][1]["resultString"].startswith("invalid_event: ")


def test_batch_null_tasks_answered(bucket: str) -> None:
    event = load_event("batch_operations_v2.json", bucket) | {"tasks": None}
    response = handler.lambda_handler(event, None)
    assert response["results"] == []
    assert response["invocationId"] == event["invocationId"]


def test_batch_unknown_schema_permanent(bucket: str) -> None:
    event = load_event("batch_operations_v2.json", bucket)
    event["invocationSchemaVersion"] = "9.9"
    response = handler.lambda_handler(event, None)
    codes = {r["resultCode"] for r in response["results"]}
    assert codes == {"PermanentFailure"}
    assert len(response["results"]) == 3


def test_late_event_superseded(
    s3_client: Any, versioned_bucket: str, sample_files: dict[str, bytes]
) -> None:
    bucket = versioned_bucket
    old = s3_client.put_object(Bucket=bucket, Key=EVENTS_CSV,
                               Body=sample_files["events.csv"])
    new = s3_client.put_object(Bucket=bucket, Key=EVENTS_CSV,
                               Body=sample_files["other.csv"])
    events = [
        notification_event(bucket, EVENTS_CSV, etag=put["ETag"], size=1,
                           version_id=put["VersionId"])
        for put in (new, old)
    ]

    newer = handler.lambda_handler(events[0], None)
    late = handler.lambda_handler(events[1], None)

    head = s3_client.head_object(Bucket=bucket, Key="scores/week 01/events.csv.parquet")
    assert outcomes(newer) == ["scored"]
    assert outcomes(late) == ["superseded"]
    assert head["Metadata"][s3io.META_SOURCE_VERSION_ID] == new["VersionId"]


def test_unversioned_changed_scores_current(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    old_etag = put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    new_etag = put(s3_client, bucket, EVENTS_CSV, sample_files["other.csv"])
    event = notification_event(bucket, EVENTS_CSV, etag=old_etag, size=1)

    result = handler.lambda_handler(event, None)

    head = s3_client.head_object(Bucket=bucket, Key="scores/week 01/events.csv.parquet")
    assert outcomes(result) == ["scored"]
    assert head["Metadata"][s3io.META_SOURCE_ETAG] == new_etag


def test_rejected_upload_removes_old_scores(
    s3_client: Any, bucket: str, sample_files: dict[str, bytes]
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)
    handler.lambda_handler(event, None)
    put(s3_client, bucket, EVENTS_CSV, MALFORMED_CSV)

    result = handler.lambda_handler(event, None)

    assert outcomes(result) == ["rejected"]
    assert keys_under(s3_client, bucket, "scores/") == []
    assert keys_under(s3_client, bucket, "errors/") == [
        "errors/week 01/events.csv.json"
    ]


def test_new_top_k_rescored(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)
    handler.lambda_handler(event, None)
    monkeypatch.setenv(s.TOP_K, "1")

    first = handler.lambda_handler(event, None)
    second = handler.lambda_handler(event, None)

    scores = read_parquet(s3_client, bucket, "scores/week 01/events.csv.parquet")
    assert outcomes(first) == ["scored"]
    assert outcomes(second) == ["duplicate"]
    assert scores["rank"].max() == 1


@pytest.fixture
def non_ascii_bundle(trained_bundle: Path, tmp_path: Path) -> Path:
    """The trained bundle with a model version that is not ASCII."""
    folder = tmp_path / "bundle"
    shutil.copytree(trained_bundle, folder)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["model_version"] = "modèle-ü 100%"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_non_ascii_model_duplicate(
    s3_client: Any,
    bucket: str,
    sample_files: dict[str, bytes],
    non_ascii_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(s.MODEL_URI, str(non_ascii_bundle))
    put(s3_client, bucket, EVENTS_CSV, sample_files["events.csv"])
    event = load_event("eventbridge_object_created.json", bucket)

    first = handler.lambda_handler(event, None)
    second = handler.lambda_handler(event, None)

    info = s3io.head_object(s3_client, bucket, "scores/week 01/events.csv.parquet")
    assert outcomes(first) == ["scored"]
    assert outcomes(second) == ["duplicate"]
    assert info is not None
    assert info.metadata[s3io.META_MODEL_VERSION] == "modèle-ü 100%"


def test_non_ascii_model_already_rejected(
    s3_client: Any,
    bucket: str,
    non_ascii_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(s.MODEL_URI, str(non_ascii_bundle))
    put(s3_client, bucket, EVENTS_CSV, MALFORMED_CSV)
    event = load_event("eventbridge_object_created.json", bucket)
    handler.lambda_handler(event, None)

    result = handler.lambda_handler(event, None)

    assert result["records"][0]["reason"].startswith("already rejected: ")


def test_folder_key_ignored(s3_client: Any, bucket: str) -> None:
    put(s3_client, bucket, "incoming/folder/", b"")
    event = notification_event(bucket, "incoming/folder/",
                               etag="d41d8cd98f00b204e9800998ecf8427e", size=0)
    result = handler.lambda_handler(event, None)
    assert outcomes(result) == ["ignored"]
    assert keys_under(s3_client, bucket, "errors/") == []


def test_gzip_error_names_real_key(s3_client: Any, bucket: str) -> None:
    key = "incoming/x.csv.gz"
    put(s3_client, bucket, key, gzip.compress(MALFORMED_CSV))
    result = handler.lambda_handler(
        notification_event(bucket, key, etag="unknown", size=1), None
    )
    report = json.loads(
        s3_client.get_object(Bucket=bucket, Key="errors/x.csv.gz.json")["Body"].read()
    )
    assert outcomes(result) == ["rejected"]
    assert report["reason"].startswith("incoming/x.csv.gz (decompressed): ")


def test_long_key_rejected(
    s3_client: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "incoming/" + "a" * (1024 - len("incoming/") - len(".csv")) + ".csv"
    put(s3_client, bucket, key, MALFORMED_CSV)
    result = handler.lambda_handler(
        notification_event(bucket, key, etag="unknown", size=1), None
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (logged,) = [line for line in lines if line.get("outcome") == "rejected"]
    assert outcomes(result) == ["rejected"]
    assert "S3's limit of 1024 bytes" in logged["reason"]
    assert logged["level"] == "ERROR"
    assert keys_under(s3_client, bucket, "scores/") == []
    assert keys_under(s3_client, bucket, "errors/") == []
