"""Memory test of the Lambda handler on a large gzip CSV (slow).

The handler runs in a child process, once on a file of about 1 MB and once
on a file of more than 200 MB uncompressed, both read from the loopback S3
server. Streaming into compact columns means the big run's peak resident
memory exceeds the small run's by less than the big file's uncompressed
size; a reader that held the decompressed body beside the frame would
need more than that.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infer import settings as s
from train.simulate import SimulationConfig, iter_event_chunks, write_events

REPO_ROOT = Path(__file__).resolve().parents[1]
MIN_BIG_BYTES = 200 * 10**6

# Simulated users write about 940 events of about 53 CSV bytes each over
# 240 days, so 4,400 users give a bit more than 200 MB; the size is
# measured, not assumed.
BIG_SAMPLE = SimulationConfig(users=4_400, days=240, seed=21)
SMALL_SAMPLE = SimulationConfig(users=20, days=240, seed=22)

CHILD = """
import json, sys
from infer.handler import lambda_handler
result = lambda_handler(json.loads(sys.argv[1]), None)
print("RESULT " + json.dumps(result, ensure_ascii=False))
"""

pytestmark = pytest.mark.slow


def uncompressed_size(path: Path) -> int:
    size = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
    return size


@pytest.fixture(scope="module")
def gzip_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("large")
    files = {"big": folder / "big.csv.gz", "small": folder / "small.csv.gz"}
    write_events(iter_event_chunks(BIG_SAMPLE), files["big"])
    write_events(iter_event_chunks(SMALL_SAMPLE), files["small"])
    return files


# Linux counts the parent's resident set at fork time into a child's peak
# (``maxrss`` survives exec), and the test process is large after training
# the bundle. So a small launcher process starts the handler's process and
# reports that grandchild's ``struct rusage`` from ``os.wait4``, the same
# numbers ``resource.getrusage(RUSAGE_CHILDREN)`` gives for that one child.
LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print("RUSAGE " + json.dumps({"maxrss_kb": usage.ru_maxrss,
                              "exit_code": os.waitstatus_to_exitcode(status)}))
"""


def run_child(
    event: dict[str, Any], env: dict[str, str], log: Path
) -> tuple[int, dict[str, Any]]:
    """Run the handler in a child process; return its peak RSS (bytes) and result."""
    with open(log, "w", encoding="utf-8") as out:
        subprocess.run(
            [sys.executable, "-c", LAUNCHER,
             sys.executable, "-c", CHILD, json.dumps(event)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=True,
        )
    text = log.read_text(encoding="utf-8")
    (usage_line,) = [line for line in text.splitlines() if line.startswith("RUSAGE ")]
    usage = json.loads(usage_line[len("RUSAGE "):])
    assert usage["exit_code"] == 0, text[-4000:]
    (line,) = [line for line in text.splitlines() if line.startswith("RESULT ")]
    # ru_maxrss is in kilobytes on Linux.
    return usage["maxrss_kb"] * 1024, json.loads(line[len("RESULT "):])


def event_for(bucket: str, key: str) -> dict[str, Any]:
    from infer.watch import notification_event

    return notification_event(bucket, key, etag="", size=0)


def child_env(trained_bundle: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in s.ENVIRONMENT_VARIABLES or name == s.AWS_ENDPOINT_URL_S3}
    env.update({s.MODEL_URI: str(trained_bundle), s.ORT_THREADS: "1",
                "PYTHONPATH": str(REPO_ROOT)})
    env.update(extra)
    return env


def test_big_gzip_memory(
    s3_client: Any,
    bucket: str,
    gzip_files: dict[str, Path],
    trained_bundle: Path,
    tmp_path: Path,
) -> None:
    big_size = uncompressed_size(gzip_files["big"])
    small_size = uncompressed_size(gzip_files["small"])
    assert big_size > MIN_BIG_BYTES
    assert small_size < 2 * 10**6
    s3_client.upload_file(str(gzip_files["big"]), bucket, "incoming/big.csv.gz")
    s3_client.upload_file(str(gzip_files["small"]), bucket, "incoming/small.csv.gz")
    env = child_env(trained_bundle)

    small_rss, small = run_child(event_for(bucket, "incoming/small.csv.gz"), env,
                                 tmp_path / "small.log")
    big_rss, big = run_child(event_for(bucket, "incoming/big.csv.gz"), env,
                             tmp_path / "big.log")

    print(f"uncompressed: big {big_size} B, small {small_size} B; peak RSS: big "
          f"{big_rss} B, small {small_rss} B, difference {big_rss - small_rss} B; "
          f"big run {big['records'][0]['seconds']} s")
    assert [r["outcome"] for r in small["records"]] == ["scored"]
    assert [r["outcome"] for r in big["records"]] == ["scored"]
    assert big_rss - small_rss < big_size


def test_gzip_bomb_report(
    s3_client: Any, bucket: str, trained_bundle: Path, tmp_path: Path
) -> None:
    # 1 GB of one repeated row compresses about 1000 times, far past the
    # default ratio cap of 100.
    bomb = tmp_path / "bomb.csv.gz"
    row = b"u1,jazz,view,1718000000\n" * 43_690
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"user_id,topic,event_type,timestamp\n")
        for _ in range(1_000):
            out.write(row)
    s3_client.upload_file(str(bomb), bucket, "incoming/bomb.csv.gz")

    rss, result = run_child(event_for(bucket, "incoming/bomb.csv.gz"),
                            child_env(trained_bundle), tmp_path / "bomb.log")

    assert [r["outcome"] for r in result["records"]] == ["rejected"]
    body = s3_client.get_object(Bucket=bucket, Key="errors/bomb.csv.gz.json")
    assert "gzip bomb" in json.loads(body["Body"].read())["reason"]
    assert rss < 10**9
