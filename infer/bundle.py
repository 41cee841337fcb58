"""Load a model bundle and run its ONNX model with onnxruntime.

A bundle is a folder with ``manifest.json`` and the ONNX file it names.
``load_bundle`` checks, before anything is scored, that the ONNX file is
the one the manifest describes (SHA-256), that the feature names this code
builds are the ones the model was trained on, and that the ONNX graph has
the input and output the manifest names. Any mismatch raises
``BundleError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from infer.errors import BundleError
from infer.features import FeatureConfig, feature_names

MANIFEST_FILE = "manifest.json"
SUPPORTED_FORMAT_VERSION = 1
# Rows per onnxruntime call. A chunk of 4096 rows of about 100 float32
# features is about 1.6 MiB, so input and hidden activations stay in a
# typical L2/L3 cache; larger chunks measured no faster.
DEFAULT_CHUNK_ROWS = 4096


def available_cpus() -> int:
    """Return the number of CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not every platform has sched_getaffinity
        return max(1, os.cpu_count() or 1)


@dataclass
class Bundle:
    """A loaded model bundle with one onnxruntime session.

    Attributes
    ----------
    path:
        The bundle folder.
    manifest:
        The parsed ``manifest.json``.
    model_version:
        ``manifest["model_version"]``, written into every output row.
    feature_config:
        The feature builder settings the model was trained with.
    event_types:
        The event-type vocabulary, catch-all type last.
    threads:
        onnxruntime intra-op threads.
    load_seconds:
        Wall time of ``load_bundle``.
    """

    path: Path
    manifest: dict[str, Any]
    model_version: str
    feature_config: FeatureConfig
    event_types: tuple[str, ...]
    threads: int
    load_seconds: float
    session: ort.InferenceSession = field(repr=False)
    input_name: str = "features"
    output_name: str = "interest"
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names of the model input."""
        return list(self.manifest["features"]["names"])

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Run the model on feature rows.

        Parameters
        ----------
        values:
            Float32 (or castable) array of shape [n, n_features], in the
            order of ``feature_names``.

        Returns
        -------
        numpy.ndarray
            Float32 interest, shape [n].

        Raises
        ------
        ValueError
            If ``values`` does not have ``n_features`` columns.
        """
        values = np.ascontiguousarray(values, dtype=np.float32)
        n_features = len(self.feature_names)
        if values.ndim != 2 or values.shape[1] != n_features:
            raise ValueError(
                f"predict: expected an array of shape [n, {n_features}], found "
                f"{values.shape}"
            )
        out = np.empty(len(values), dtype=np.float32)
        for start in range(0, len(values), self.chunk_rows):
            chunk = values[start : start + self.chunk_rows]
            result = self.session.run([self.output_name], {self.input_name: chunk})[0]
            out[start : start + len(chunk)] = np.asarray(result).reshape(-1)
        return out


def load_bundle(path: str | os.PathLike[str], *, threads: int | None = None) -> Bundle:
    """Load and check a model bundle folder.

    Parameters
    ----------
    path:
        The bundle folder (for example ``artifacts/latest``).
    threads:
        onnxruntime intra-op threads, from 1 to the CPUs this process may
        run on; default: that number of CPUs.

    Returns
    -------
    Bundle
        The checked bundle with an open onnxruntime session.

    Raises
    ------
    BundleError
        If the manifest is missing or invalid, the ONNX file is missing or
        its SHA-256 differs from the manifest, the manifest's feature names
        differ from what ``infer.features`` builds, or the ONNX graph lacks
        the named input or output.
    """
    started = time.perf_counter()
    folder = Path(path)
    manifest = _read_manifest(folder)
    try:
        onnx_info = manifest["onnx"]
        onnx_file = folder / onnx_info["file"]
        expected_sha = str(onnx_info["sha256"])
        input_name = str(onnx_info["input"])
        output_name = str(onnx_info["output"])
        names = list(manifest["features"]["names"])
        config = FeatureConfig.from_dict(manifest["features"]["config"])
        event_types = tuple(manifest["event_types"])
        version = str(manifest["model_version"])
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(
            f"{folder / MANIFEST_FILE}: invalid manifest, {type(error).__name__}: "
            f"{error}; expected the keys onnx.file, onnx.sha256, onnx.input, "
            f"onnx.output, features.names, features.config, event_types and "
            f"model_version; train the bundle again with this version"
        ) from error

    _check_sha256(onnx_file, expected_sha)
    _check_features(folder, names, config, event_types)
    cpus = available_cpus()
    n_threads = cpus if threads is None else int(threads)
    if n_threads < 1:
        raise BundleError(f"threads must be >= 1, got {threads!r}")
    if n_threads > cpus:
        raise BundleError(
            f"threads={n_threads} is above the {cpus} CPUs this process may run "
            f"on; more threads than CPUs only add memory and contention; use at "
            f"most {cpus}, or leave it unset to use every CPU"
        )
    session = _open_session(onnx_file, n_threads)
    _check_io(onnx_file, session, input_name, output_name, len(names))
    return Bundle(
        path=folder,
        manifest=manifest,
        model_version=version,
        feature_config=config,
        event_types=event_types,
        threads=n_threads,
        load_seconds=time.perf_counter() - started,
        session=session,
        input_name=input_name,
        output_name=output_name,
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest_path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BundleError(
            f"{manifest_path}: manifest not found; expected a bundle folder written "
            f"by 'python -m train fit' (for example artifacts/latest)"
        ) from error
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(
            f"{manifest_path}: cannot read the manifest: {error}; train the bundle "
            f"again or restore the folder"
        ) from error
    if not isinstance(manifest, dict):
        raise BundleError(
            f"{manifest_path}: expected a JSON object, found {manifest!r}"
        )
    version = manifest.get("format_version", SUPPORTED_FORMAT_VERSION)
    if version != SUPPORTED_FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: format_version {version!r} is not supported; this "
            f"code reads format_version {SUPPORTED_FORMAT_VERSION}"
        )
    return manifest


def _check_sha256(onnx_file: Path, expected: str) -> None:
    digest = hashlib.sha256()
    try:
        with open(onnx_file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise BundleError(
            f"{onnx_file}: cannot read the ONNX model: {error.strerror}; restore the "
            f"bundle folder"
        ) from error
    found = digest.hexdigest()
    if found != expected.lower():
        raise BundleError(
            f"{onnx_file}: SHA-256 mismatch, manifest expects {expected}, file has "
            f"{found}; the file was changed or truncated, so copy the bundle again"
        )


def _check_features(
    folder: Path, names: list[str], config: FeatureConfig, event_types: tuple[str, ...]
) -> None:
    built = feature_names(config)
    if built != names:
        missing = [name for name in names if name not in built]
        extra = [name for name in built if name not in names]
        raise BundleError(
            f"{folder}: feature names differ between the manifest ({len(names)}) and "
            f"this code ({len(built)}); in the manifest only: {missing[:5]}, in the "
            f"code only: {extra[:5]}; train the bundle again with this code"
        )
    if tuple(config.event_types) != event_types:
        raise BundleError(
            f"{folder}: event_types {list(event_types)} differ from "
            f"features.config.event_types {list(config.event_types)}; train the "
            f"bundle again"
        )


def _open_session(onnx_file: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One graph runs at a time, so parallel operators would only add threads.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(
            str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise BundleError(
            f"{onnx_file}: onnxruntime cannot load the model: {error}; check the "
            f"onnxruntime version against the manifest's versions.onnxruntime"
        ) from error


def _check_io(
    onnx_file: Path,
    session: ort.InferenceSession,
    input_name: str,
    output_name: str,
    n_features: int,
) -> None:
    inputs = {item.name: item for item in session.get_inputs()}
    outputs = [item.name for item in session.get_outputs()]
    if input_name not in inputs:
        raise BundleError(
            f"{onnx_file}: the graph has no input {input_name!r} (manifest "
            f"onnx.input); found {list(inputs)}"
        )
    if output_name not in outputs:
        raise BundleError(
            f"{onnx_file}: the graph has no output {output_name!r} (manifest "
            f"onnx.output); found {outputs}"
        )
    width = inputs[input_name].shape[-1]
    if isinstance(width, int) and width != n_features:
        raise BundleError(
            f"{onnx_file}: input {input_name!r} takes {width} features, the manifest "
            f"lists {n_features}; train the bundle again"
        )
