"""Bundle loader tests on a tiny real ONNX model built with the onnx helper API."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from infer.bundle import load_bundle
from infer.errors import BundleError
from infer.features import FeatureConfig, feature_names

TINY_CONFIG = FeatureConfig(
    event_types=("view", "click", "like", "other"),
    lookback_days=90.0,
    windows_days=(1.0, 7.0, 30.0, 90.0),
    half_lives_days=(1.0, 7.0, 30.0),
)


def make_tiny_bundle(folder: Path, config: FeatureConfig = TINY_CONFIG) -> Path:
    """Write a bundle whose model is sigmoid(features @ w + b), w fixed and small.

    The weights make recent activity (small ``days_since_last_any``) and a
    large decayed share raise the output, so behaviour tests have a known
    direction.
    """
    names = feature_names(config)
    weights = np.zeros((len(names), 1), dtype=np.float32)
    weights[names.index("days_since_last_any"), 0] = -0.05
    weights[names.index(f"share_decayed_{config.half_lives_days[0]:g}d"), 0] = 2.0
    bias = np.array([0.1], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["logit_raw"]),
            helper.make_node("Add", ["logit_raw", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["interest"]),
        ],
        "tiny",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["batch", len(names)]
            )
        ],
        [helper.make_tensor_value_info("interest", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(bias, "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_bytes = model.SerializeToString()
    (folder / "model.onnx").write_bytes(onnx_bytes)
    manifest = {
        "format_version": 1,
        "model_version": "tiny-test-1",
        "onnx": {
            "file": "model.onnx",
            "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "opset": 17,
            "input": "features",
            "output": "interest",
        },
        "features": {"names": names, "config": config.to_dict()},
        "event_types": list(config.event_types),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    return make_tiny_bundle(tmp_path / "bundle")


def edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_load_bundle_fields(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle, threads=1)
    assert bundle.model_version == "tiny-test-1"
    assert bundle.feature_config == TINY_CONFIG
    assert bundle.event_types == ("view", "click", "like", "other")
    assert bundle.threads == 1
    assert bundle.load_seconds > 0


def test_load_bundle_default_threads(tiny_bundle: Path) -> None:
    assert load_bundle(tiny_bundle).threads == len(os.sched_getaffinity(0))


def test_predict_matches_numpy(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle, threads=1)
    bundle.chunk_rows = 7
    rng = np.random.default_rng(0)
    values = rng.random((50, len(bundle.feature_names)), dtype=np.float32)
    weights = np.zeros(len(bundle.feature_names), dtype=np.float64)
    weights[bundle.feature_names.index("days_since_last_any")] = -0.05
    weights[bundle.feature_names.index("share_decayed_1d")] = 2.0
    expected = 1 / (1 + np.exp(-(values.astype(np.float64) @ weights + 0.1)))
    got = bundle.predict(values)
    assert got.dtype == np.float32
    assert got.shape == (50,)
    assert np.max(np.abs(got - expected)) < 1e-6


def test_predict_wrong_width(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle, threads=1)
    with pytest.raises(ValueError, match=r"expected an array of shape \[n, "):
        bundle.predict(np.zeros((2, 3), dtype=np.float32))


def test_sha256_mismatch(tiny_bundle: Path) -> None:
    with open(tiny_bundle / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="SHA-256 mismatch, manifest expects"):
        load_bundle(tiny_bundle)


def test_feature_names_mismatch(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    names = manifest["features"]["names"]
    names[0] = "log_count_view_2d"
    edit_manifest(tiny_bundle, features=manifest["features"])
    with pytest.raises(BundleError) as caught:
        load_bundle(tiny_bundle)
    message = str(caught.value)
    assert "feature names differ between the manifest" in message
    assert "in the manifest only: ['log_count_view_2d']" in message
    assert "in the code only: ['log_count_view_1d']" in message


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="manifest not found"):
        load_bundle(tmp_path)


def test_manifest_missing_key(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    del manifest["model_version"]
    (tiny_bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match="invalid manifest, KeyError: 'model_version'"
    ):
        load_bundle(tiny_bundle)


def test_wrong_input_name(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    manifest["onnx"]["input"] = "x"
    (tiny_bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="the graph has no input 'x'"):
        load_bundle(tiny_bundle)


def test_unsupported_format_version(tiny_bundle: Path) -> None:
    edit_manifest(tiny_bundle, format_version=2)
    with pytest.raises(BundleError, match="format_version 2 is not supported"):
        load_bundle(tiny_bundle)


def test_zero_threads_rejected(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="threads must be >= 1"):
        load_bundle(tiny_bundle, threads=0)


def test_threads_above_cpus_rejected(tiny_bundle: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    with pytest.raises(BundleError, match=f"threads=100000 is above the {cpus} CPUs"):
        load_bundle(tiny_bundle, threads=100000)
