"""Fixtures that run the S3 API over HTTP on loopback (moto server).

The server runs once per session on a free port of 127.0.0.1. Code under
test reaches it exactly as it reaches AWS: through boto3, with the endpoint
taken from ``AWS_ENDPOINT_URL_S3``. Credentials are fake and every AWS
variable that the session changes is restored at the end.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"

# Variables set for the whole session. The shared config and credential
# files point at a path that does not exist, so that no profile of the
# machine leaks in, and the instance metadata lookup is off.
_SESSION_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_SESSION_UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 and point boto3 at it.

    Yields the endpoint URL. ``AWS_ENDPOINT_URL_S3`` and fake credentials
    are set for the session and restored afterwards.
    """
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name)
             for name in (*_SESSION_ENV, *_SESSION_UNSET, "AWS_ENDPOINT_URL_S3")}
    os.environ.update(_SESSION_ENV)
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    for name in _SESSION_UNSET:
        os.environ.pop(name, None)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """Return a boto3 S3 client of the loopback server."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)


@pytest.fixture
def bucket(s3_client: Any) -> Iterator[str]:
    """Create an empty bucket with a unique name for one test; delete it after."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    _delete_bucket(s3_client, name)


@pytest.fixture
def versioned_bucket(s3_client: Any) -> Iterator[str]:
    """Create an empty bucket with versioning enabled; delete it after."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    s3_client.put_bucket_versioning(
        Bucket=name, VersioningConfiguration={"Status": "Enabled"}
    )
    yield name
    _delete_bucket(s3_client, name)


def _delete_bucket(client: Any, name: str) -> None:
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=name):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(
                Bucket=name, Key=item["Key"], VersionId=item["VersionId"]
            )
    client.delete_bucket(Bucket=name)
