"""Local trigger: poll a bucket's input prefix and run the cloud function.

``python -m infer watch --bucket B --endpoint-url URL`` lists the input
prefix every few seconds and, for each new object or new ETag, builds the
S3 ObjectCreated notification that AWS would send (key URL-encoded) and
passes it to ``infer.handler.lambda_handler``. The whole S3 flow can so be
tried against a local S3 server (moto, MinIO) without AWS.

A record that fails with anything other than an input-contract error is
tried again at the next poll, up to ``--max-attempts`` times, which is
roughly what Lambda's retries do before the dead-letter queue.

Before the first poll the command reads the settings, checks that the
bucket can be reached and loads the model bundle (``MODEL_URI``). A problem
there is printed as one ``error:`` line on stderr, with exit code 2, and
so is an invalid ``--endpoint-url``, ``--interval`` or ``--max-attempts``.
``--once`` exits with 1 when a handler call failed.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, urlsplit

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from infer.errors import InterestDecayError
from infer.settings import AWS_ENDPOINT_URL_S3, MODEL_URI, Settings

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any], Any], Any]

EXIT_OK = 0
EXIT_OBJECT_FAILED = 1
EXIT_USAGE = 2


class StartupError(Exception):
    """A problem found before the first poll; the message is printed as is."""


@dataclass
class PollCounts:
    """Handler calls of one poll: how many returned and how many raised."""

    succeeded: int = 0
    failed: int = 0


def notification_event(
    bucket: str, key: str, *, etag: str, size: int, version_id: str | None = None
) -> dict[str, Any]:
    """Build the S3 ObjectCreated:Put notification AWS sends for one object.

    The key is URL-encoded as S3 encodes it (``+`` for a space).
    """
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag.strip('"'),
        "sequencer": f"{time.time_ns():020X}",
    }
    if version_id and version_id != "null":
        obj["versionId"] = version_id
    return {
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
            "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "infer-watch",
                "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                "object": obj,
            },
        }]
    }


class Watcher:
    """Poller of the input prefix that remembers which (key, ETag) pairs ran."""

    def __init__(self, client: Any, bucket: str, prefix: str, max_attempts: int = 3):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.done: dict[str, str] = {}
        self.attempts: dict[tuple[str, str], int] = {}

    def list_new(self) -> Iterator[dict[str, Any]]:
        """Yield the listed objects whose (key, ETag) was not handled yet."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):
                    continue
                if self.done.get(item["Key"]) != item["ETag"].strip('"'):
                    yield item

    def mark_skipped(self) -> int:
        """Mark every object present now as handled; return how many."""
        items = list(self.list_new())
        for item in items:
            self.done[item["Key"]] = item["ETag"].strip('"')
        return len(items)

    def poll(self, handler: Handler) -> PollCounts:
        """Invoke ``handler`` once per new object; return the counts of the calls."""
        counts = PollCounts()
        for item in list(self.list_new()):
            key, etag = item["Key"], item["ETag"].strip('"')
            event = notification_event(self.bucket, key, etag=etag, size=item["Size"])
            attempt = self.attempts.get((key, etag), 0) + 1
            try:
                handler(event, None)
            except Exception:
                counts.failed += 1
                self.attempts[(key, etag)] = attempt
                if attempt < self.max_attempts:
                    log.warning("handler failed; retrying at next poll", exc_info=True,
                                extra={"key": key, "etag": etag, "attempt": attempt})
                    continue
                log.error("handler failed; giving up on this object", exc_info=True,
                          extra={"key": key, "etag": etag, "attempt": attempt})
            else:
                counts.succeeded += 1
            self.done[key] = etag
            self.attempts.pop((key, etag), None)
        return counts


def add_watch_command(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``watch`` subcommand to the ``python -m infer`` parser."""
    parser = subparsers.add_parser(
        "watch",
        help="poll an S3 bucket and score new objects with the cloud function's code",
        description=(
            "Poll the input prefix (INPUT_PREFIX, default incoming/) of a bucket "
            "and invoke the Lambda handler for every new object or new ETag. "
            "Settings come from the same environment variables as in Lambda."
        ),
    )
    parser.add_argument("--bucket", required=True, help="bucket to watch")
    parser.add_argument(
        "--endpoint-url",
        help=f"S3 endpoint, for example http://127.0.0.1:5000; sets "
        f"{AWS_ENDPOINT_URL_S3} for the handler (default: that variable, or AWS)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls (default 2)"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="ignore objects present at start; by default they are handled "
        "(objects already scored by the same model are skipped as duplicates)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll once and exit, instead of looping; the exit code is 1 when a "
        "handler call failed (input-contract rejections do not count)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="tries per object before giving up on a failing one (default 3)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``watch`` subcommand; return the process exit code."""
    from infer.handler import configure_logging, lambda_handler

    problem = _argument_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.endpoint_url:
        os.environ[AWS_ENDPOINT_URL_S3] = args.endpoint_url
    configure_logging()
    try:
        settings, client = _start(args.bucket)
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    watcher = Watcher(client, args.bucket, settings.input_prefix, args.max_attempts)
    if args.skip_existing:
        skipped = watcher.mark_skipped()
        log.info("skipping existing objects", extra={"objects": skipped})
    log.info("watching", extra={"bucket": args.bucket, "prefix": settings.input_prefix,
                                "interval_seconds": args.interval})
    try:
        while True:
            try:
                counts = watcher.poll(lambda_handler)
            except (BotoCoreError, ClientError) as error:
                if args.once:
                    print(f"error: {_s3_problem(error, args.bucket)}", file=sys.stderr)
                    return EXIT_USAGE
                log.error("listing failed; trying again at the next poll",
                          extra={"bucket": args.bucket, "error": str(error)})
            else:
                if args.once:
                    return EXIT_OBJECT_FAILED if counts.failed else EXIT_OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        log.info("stopped")
        return EXIT_OK


def _argument_problem(args: argparse.Namespace) -> str | None:
    """Return what is wrong with the command-line values, or None."""
    if args.endpoint_url:
        parts = urlsplit(args.endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return (
                f"--endpoint-url {args.endpoint_url!r} is not an http or https "
                f"URL; pass one such as http://127.0.0.1:5000"
            )
    if not math.isfinite(args.interval) or args.interval <= 0:
        return (
            f"--interval {args.interval:g} is invalid; pass a positive number of "
            f"seconds such as 2"
        )
    if args.max_attempts < 1:
        return (
            f"--max-attempts {args.max_attempts} is invalid; pass a positive "
            f"number of tries such as 3"
        )
    return None


def _start(bucket: str) -> tuple[Settings, Any]:
    """Read the settings, check the bucket and load the bundle.

    Raises
    ------
    StartupError
        If any of the three fails; the message names the fix.
    """
    from infer.handler import get_bundle, s3_client

    try:
        settings = Settings.from_env()
    except InterestDecayError as error:
        raise StartupError(str(error)) from error
    # A new session reads the credentials of the current environment.
    try:
        client = boto3.session.Session().client("s3")
    except ValueError as error:  # for example an invalid AWS_ENDPOINT_URL_S3
        raise StartupError(
            f"cannot create the S3 client: {error}; fix --endpoint-url or "
            f"{AWS_ENDPOINT_URL_S3}"
        ) from error
    try:
        client.head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as error:
        raise StartupError(_s3_problem(error, bucket)) from error
    try:
        get_bundle(settings, s3_client())
    except (InterestDecayError, BotoCoreError, ClientError) as error:
        raise StartupError(
            f"cannot load the model bundle {MODEL_URI}={settings.model_uri}: "
            f"{error}; set {MODEL_URI} to a bundle folder such as artifacts/latest"
        ) from error
    return settings, client


def _s3_problem(error: BotoCoreError | ClientError, bucket: str) -> str:
    endpoint = os.environ.get(AWS_ENDPOINT_URL_S3) or "the AWS S3 endpoint"
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (any values work for a local S3 server)"
        )
    if isinstance(error, EndpointConnectionError):
        return (
            f"cannot connect to {endpoint}; start the S3 server, or fix "
            f"--endpoint-url"
        )
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket"):
            return (
                f"bucket {bucket!r} not found at {endpoint}; create it, or fix "
                f"--bucket"
            )
        if code in ("403", "AccessDenied"):
            return (
                f"access to bucket {bucket!r} at {endpoint} was denied; check the "
                f"credentials and the bucket policy"
            )
    return f"S3 request to bucket {bucket!r} at {endpoint} failed: {error}"
