"""Lambda zip package: pinned requirements, stripping, and a real build.

The slow tests build the zip with the session's trained bundle and unpack
it into a fresh folder. They run the packaged handler with the Lambda
runtime's Python version, whose ``sys.path`` contains only the unpacked
folder, the standard library, and boto3 with its dependencies (which the
Lambda runtime provides). The handler scores a file from S3 (moto server on
loopback), as it would in Lambda.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from packaging.requirements import Requirement

from infra import package
from infra.package import (
    MAX_UNZIPPED_BYTES,
    RUNTIME_PROVIDED,
    TRAINING_ONLY,
    PackageError,
    check_bundle,
    normalize,
    pinned_requirements,
    remove_library_copies,
)

EXAMPLE_EVENT = package.REPO_ROOT / "infra" / "events" / "s3_put.json"
# Top-level names of what the Lambda Python runtime provides: boto3 and the
# packages it needs, copied from this environment into a folder that plays
# the runtime's part.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3")
FORBIDDEN_TOP_LEVEL = {"tensorflow", "keras", "tf2onnx", "onnx", "boto3", "botocore"}


def lambda_python() -> str:
    """Return an interpreter of the Lambda runtime's Python version.

    ``LAMBDA_TEST_PYTHON`` wins; otherwise ``pythonX.Y`` on PATH or in pyenv.
    """
    version = package.LAMBDA_PYTHON_VERSION
    executable = f"python{version}"
    candidates = [os.environ.get("LAMBDA_TEST_PYTHON"), shutil.which(executable)]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pattern = f"versions/{version}*/bin/{executable}"
    candidates += sorted(str(path) for path in pyenv_root.glob(pattern))
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    pytest.fail(
        f"Python {version} not found (tried LAMBDA_TEST_PYTHON, python{version} on "
        f"PATH, {pyenv_root}/versions); install Python {version}, the Lambda "
        f"runtime's version, or set LAMBDA_TEST_PYTHON to its interpreter"
    )


# Fast checks: pins, bundle check, stripping rules.


def test_pins_cover_scoring_dependencies() -> None:
    project = tomllib.loads((package.REPO_ROOT / "pyproject.toml").read_text())
    pins = pinned_requirements()
    for line in project["project"]["dependencies"]:
        requirement = Requirement(line)
        name = normalize(requirement.name)
        if name in RUNTIME_PROVIDED:
            assert name not in pins, f"{name} is provided by the runtime"
            continue
        assert name in pins, f"{name} missing from requirements-lambda.txt"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} does not satisfy {requirement.specifier}"
        )


def test_pins_exclude_training_and_runtime() -> None:
    pins = pinned_requirements()
    for name in TRAINING_ONLY | RUNTIME_PROVIDED:
        assert normalize(name) not in pins, name


def test_pins_match_tested_versions() -> None:
    # The package must hold what the test suite ran against.
    from importlib.metadata import version

    for name, pinned in pinned_requirements().items():
        assert version(name) == pinned, name


def test_unpinned_requirement_rejected(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("numpy>=2\n")
    with pytest.raises(PackageError, match="is not pinned"):
        pinned_requirements(path)


def test_bundle_without_manifest_rejected(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="manifest.json not found"):
        check_bundle(tmp_path)


def test_bundle_without_onnx_rejected(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"onnx": {"file": "m.onnx"}}))
    with pytest.raises(PackageError, match="'m.onnx' named in manifest.json"):
        check_bundle(tmp_path)


def test_library_copies_removed(tmp_path: Path) -> None:
    for name in ("libarrow.so", "libarrow.so.2600", "libarrow.so.2600.1.0",
                 "libother.so", "libplain.so.3.1"):
        (tmp_path / name).write_bytes(b"")
    remove_library_copies(tmp_path)
    kept = sorted(path.name for path in tmp_path.iterdir())
    assert kept == ["libarrow.so.2600", "libother.so", "libplain.so.3.1"]


def test_unknown_architecture_rejected(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="architecture 'sparc'"):
        package.build_package(tmp_path, tmp_path / "lambda.zip", architecture="sparc")


# Slow: build the zip and run it.


@pytest.fixture(scope="module")
def built(
    trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """Build the zip with the command line; return the zip and what it printed."""
    out = tmp_path_factory.mktemp("package") / "lambda.zip"
    result = subprocess.run(
        [sys.executable, "-m", "infra.package", "--model", str(trained_bundle),
         "--out", str(out)],
        cwd=package.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.fixture(scope="module")
def unpacked(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    task_root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(built[0]) as archive:
        archive.extractall(task_root)
    return task_root


@pytest.fixture(scope="module")
def runtime_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder with boto3 and its dependencies, as the runtime has them."""
    import importlib

    root = tmp_path_factory.mktemp("runtime")
    for name in RUNTIME_MODULES:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        folder = Path(module.__file__).parent
        (root / name).symlink_to(folder, target_is_directory=True)
    return root


@pytest.mark.slow
def test_zip_prints_sizes(built: tuple[Path, str]) -> None:
    out, printed = built
    assert out.is_file()
    assert "zipped size:" in printed
    assert "unzipped size:" in printed


@pytest.mark.slow
def test_zip_under_lambda_limit(built: tuple[Path, str]) -> None:
    with zipfile.ZipFile(built[0]) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    assert unzipped < MAX_UNZIPPED_BYTES


@pytest.mark.slow
def test_zip_leaves_out_training_and_boto3(built: tuple[Path, str]) -> None:
    with zipfile.ZipFile(built[0]) as archive:
        names = archive.namelist()
    # Packages and their *.dist-info folders, by distribution name.
    top_level = {normalize(name.split("/", 1)[0].split("-")[0]) for name in names}
    for forbidden in FORBIDDEN_TOP_LEVEL:
        assert forbidden not in top_level, forbidden
    # The bundle's Keras model is for training tools only.
    assert not [name for name in names if name.endswith(".keras")]


@pytest.mark.slow
def test_zip_holds_code_and_bundle(
    built: tuple[Path, str], trained_bundle: Path
) -> None:
    with zipfile.ZipFile(built[0]) as archive:
        names = set(archive.namelist())
    assert "infer/handler.py" in names
    assert "model/manifest.json" in names
    manifest = json.loads((trained_bundle / "manifest.json").read_text())
    assert f"model/{manifest['onnx']['file']}" in names
    assert not any("__pycache__" in name for name in names)


@pytest.mark.slow
def test_zip_template_beside_zip(built: tuple[Path, str]) -> None:
    template = json.loads(built[0].with_name("template.json").read_text())
    properties = template["Resources"]["ScoreFunction"]["Properties"]
    assert properties["CodeUri"] == "lambda.zip"
    assert properties["Runtime"] == package.LAMBDA_RUNTIME


# Runs in the subprocess: `python -I -S` ignores PYTHONPATH and site-packages,
# so the path is the task root, the runtime folder and the standard library.
_RUN_HANDLER = """
import json, sys
task_root, runtime_root, event_path = sys.argv[1:4]
sys.path[:0] = [task_root, runtime_root]
import infer.handler
import numpy, onnxruntime, pandas, pyarrow
for module in (numpy, onnxruntime, pandas, pyarrow, infer.handler):
    assert module.__file__.startswith(task_root), module.__file__
with open(event_path, encoding="utf-8") as handle:
    event = json.load(handle)
result = infer.handler.lambda_handler(event, None)
loaded = sorted(name for name in sys.modules
                if name.split(".")[0] in {"tensorflow", "keras", "tf2onnx"})
print(json.dumps({"result": result, "training_modules": loaded}, default=str))
"""


@pytest.fixture
def handler_run(
    unpacked: Path,
    runtime_root: Path,
    s3_client: Any,
    bucket: str,
    fixtures_dir: Path,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """Upload a behaviour file, run the packaged handler on the example event."""
    event = json.loads(EXAMPLE_EVENT.read_text())
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
    s3_client.upload_file(str(fixtures_dir / "inputs" / "basic.csv"), bucket, key)
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))

    environment = {
        name: value for name, value in os.environ.items()
        if name.startswith("AWS_") or name in {"PATH", "HOME", "TMPDIR"}
    }
    result = subprocess.run(
        [lambda_python(), "-I", "-S", "-c", _RUN_HANDLER,
         str(unpacked), str(runtime_root), str(event_path)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    output["key"] = key
    yield output


@pytest.mark.slow
def test_packaged_handler_scores(
    handler_run: dict[str, Any], s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    key = handler_run["key"]
    relative = key[len("incoming/") :]
    scores_key = f"scores/{relative}.parquet"
    path = tmp_path / "scores.parquet"
    s3_client.download_file(bucket, scores_key, str(path))
    scores = pd.read_parquet(path)
    assert len(scores) > 0
    assert {"user_id", "topic", "interest", "rank"} <= set(scores.columns)
    assert scores["interest"].between(0, 1).all()


@pytest.mark.slow
def test_packaged_handler_loads_no_training(handler_run: dict[str, Any]) -> None:
    assert handler_run["training_modules"] == []
