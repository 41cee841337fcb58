"""Model bundle folder: name, manifest, atomic write and the ``latest`` link.

A bundle is written into a hidden temporary folder beside its final place
and renamed when every file is in it, so a reader never sees half a
bundle. ``<out>/latest`` is a relative symbolic link to the newest bundle,
replaced atomically.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
KERAS_FILE = "model.keras"
LATEST = "latest"


def iso_utc(epoch_seconds: float) -> str:
    """Return epoch seconds as ISO-8601 UTC, such as ``2024-01-31T00:00:00Z``."""
    moment = datetime.fromtimestamp(int(epoch_seconds), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def short_commit(repo: Path) -> str | None:
    """Return the short git commit of ``repo``, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def model_version(source: str, created: datetime, code_commit: str | None) -> str:
    """Return ``<source>-<UTC timestamp>-<short git commit or 'nogit'>``."""
    return f"{source}-{created.strftime('%Y%m%dT%H%M%SZ')}-{code_commit or 'nogit'}"


def library_versions() -> dict[str, str]:
    """Return the versions of Python and of the libraries the bundle depends on."""
    versions = {"python": platform.python_version()}
    for name, distribution in (
        ("tensorflow", ("tensorflow-cpu", "tensorflow")),
        ("keras", ("keras",)),
        ("tf2onnx", ("tf2onnx",)),
        ("onnx", ("onnx",)),
        ("onnxruntime", ("onnxruntime",)),
    ):
        versions[name] = _installed_version(distribution)
    return versions


def _installed_version(distributions: tuple[str, ...]) -> str:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to manifest.json: {value!r}")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` (indented, keys in insertion order)."""
    path = folder / MANIFEST
    path.write_text(
        json.dumps(manifest, indent=2, default=_json_default) + "\n", encoding="utf-8"
    )
    return path


@contextmanager
def staging_folder(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh hidden folder in ``out_dir``; remove it if the block fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, out_dir: Path, name: str) -> Path:
    """Rename the staging folder to ``out_dir/name``; point ``latest`` at it.

    Raises
    ------
    FileExistsError
        If a bundle of that name exists already; the staging folder is
        removed.
    """
    final = out_dir / name
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise FileExistsError(
            f"bundle folder {final} exists already; wait a second and train again, "
            f"or remove it"
        )
    staging.rename(final)
    link = out_dir / LATEST
    temporary_link = out_dir / f".{LATEST}-{uuid.uuid4().hex[:12]}"
    temporary_link.symlink_to(name, target_is_directory=True)
    os.replace(temporary_link, link)
    return final
