"""Tests of the local trigger ``python -m infer watch`` against loopback S3."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from infer import handler
from infer import settings as s
from infer.cli import main
from infer.events import parse_notification
from infer.watch import Watcher, notification_event
from train.simulate import SimulationConfig, simulate_events, write_events

KEY = "incoming/tenant-ä/week 01 (c++).csv"


@pytest.fixture(scope="module")
def events_csv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("watch") / "events.csv"
    write_events(simulate_events(SimulationConfig(users=20, days=20, seed=9)), path)
    return path.read_bytes()


@pytest.fixture(autouse=True)
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, trained_bundle: Path, s3_endpoint: str
) -> Iterator[None]:
    for name in s.ENVIRONMENT_VARIABLES:
        if name != s.AWS_ENDPOINT_URL_S3:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(s.MODEL_URI, str(trained_bundle))
    monkeypatch.setenv(s.ORT_THREADS, "1")
    handler._state["bundles"].clear()
    yield
    handler._state["bundles"].clear()


def test_event_round_trip() -> None:
    event = notification_event("b", KEY, etag='"abc"', size=3, version_id="v1")
    (record,) = parse_notification(event)
    assert record.key == KEY
    assert record.etag == "abc"
    assert record.version_id == "v1"
    assert event["Records"][0]["s3"]["object"]["key"] == (
        "incoming/tenant-%C3%A4/week+01+%28c%2B%2B%29.csv"
    )


def test_watch_once_scores(
    s3_client: Any, bucket: str, s3_endpoint: str, events_csv: bytes
) -> None:
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=events_csv)
    s3_client.put_object(Bucket=bucket, Key="elsewhere/x.csv", Body=events_csv)

    code = main(["watch", "--bucket", bucket, "--endpoint-url", s3_endpoint, "--once"])

    listing = s3_client.list_objects_v2(Bucket=bucket, Prefix="scores/")
    assert code == 0
    assert [item["Key"] for item in listing["Contents"]] == [
        "scores/tenant-ä/week 01 (c++).csv.parquet"
    ]


def test_poll_only_new_etags(s3_client: Any, bucket: str, events_csv: bytes) -> None:
    calls: list[str] = []

    def record(event: Mapping[str, Any], context: Any) -> None:
        calls.extend(r.key for r in parse_notification(event))

    watcher = Watcher(s3_client, bucket, "incoming/")
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=events_csv)
    watcher.poll(record)
    watcher.poll(record)
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=events_csv + b"\n")
    watcher.poll(record)
    assert calls == [KEY, KEY]


def test_skip_existing(s3_client: Any, bucket: str, events_csv: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=events_csv)
    watcher = Watcher(s3_client, bucket, "incoming/")
    assert watcher.mark_skipped() == 1
    assert list(watcher.list_new()) == []


def test_failing_object_retried_then_dropped(
    s3_client: Any, bucket: str, events_csv: bytes
) -> None:
    attempts: list[str] = []

    def fail(event: Mapping[str, Any], context: Any) -> None:
        attempts.append("try")
        raise TimeoutError("read timed out")

    s3_client.put_object(Bucket=bucket, Key=KEY, Body=events_csv)
    watcher = Watcher(s3_client, bucket, "incoming/", max_attempts=2)
    for _ in range(4):
        watcher.poll(fail)
    assert len(attempts) == 2


def watch(bucket: str, endpoint: str) -> int:
    return main(["watch", "--bucket", bucket, "--endpoint-url", endpoint, "--once"])


def test_watch_missing_bucket(
    s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = watch("no-such-bucket", s3_endpoint)
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: bucket 'no-such-bucket' not found at {s3_endpoint}; create it, "
        f"or fix --bucket\n"
    )


def test_watch_missing_credentials(
    bucket: str,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    code = watch(bucket, s3_endpoint)
    assert code == 2
    assert capsys.readouterr().err.startswith("error: no AWS credentials found;")


def test_watch_overlapping_prefixes(
    bucket: str,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(s.OUTPUT_PREFIX, "incoming/scores/")
    code = watch(bucket, s3_endpoint)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: OUTPUT_PREFIX")
    assert "Traceback" not in err


def test_watch_invalid_model(
    bucket: str,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(s.MODEL_URI, str(tmp_path))
    code = watch(bucket, s3_endpoint)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: cannot load the model bundle MODEL_URI={tmp_path}")


def _throttle_get(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
    response = AWSResponse("http://127.0.0.1/", 503, {}, None)
    parsed = {
        "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
        "ResponseMetadata": {"HTTPStatusCode": 503},
    }
    return response, parsed


def test_watch_once_failure_exit(
    s3_client: Any, bucket: str, s3_endpoint: str, events_csv: bytes
) -> None:
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=events_csv)
    client = handler.s3_client()
    client.meta.events.register("before-call.s3.GetObject", _throttle_get)
    try:
        code = watch(bucket, s3_endpoint)
    finally:
        client.meta.events.unregister("before-call.s3.GetObject", _throttle_get)
    assert code == 1


def test_watch_once_rejected_exit(
    s3_client: Any, bucket: str, s3_endpoint: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=b"user_id\nu1\n")
    code = watch(bucket, s3_endpoint)
    assert code == 0
    assert "Contents" in s3_client.list_objects_v2(Bucket=bucket, Prefix="errors/")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--endpoint-url", "not-a-url"],
         "error: --endpoint-url 'not-a-url' is not an http or https URL; pass one "
         "such as http://127.0.0.1:5000\n"),
        (["--interval", "-1"],
         "error: --interval -1 is invalid; pass a positive number of seconds "
         "such as 2\n"),
        (["--max-attempts", "0"],
         "error: --max-attempts 0 is invalid; pass a positive number of tries "
         "such as 3\n"),
    ],
)
def test_watch_bad_argument(
    bucket: str, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["watch", "--bucket", bucket, "--once", *extra])
    assert code == 2
    assert capsys.readouterr().err == message


def test_watch_bad_endpoint_variable(
    bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(s.AWS_ENDPOINT_URL_S3, "not-a-url")
    code = main(["watch", "--bucket", bucket, "--once"])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: cannot create the S3 client: ")
