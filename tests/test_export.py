"""ONNX export: named tensors, dynamic batch, parity with Keras."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from train import export
from train.export import ExportError, export_onnx, parity


@pytest.fixture(scope="module")
def onnx_path(training_run):
    return training_run.bundle / "model.onnx"


def test_input_named_features(onnx_path) -> None:
    graph = onnx.load(str(onnx_path)).graph
    assert [value.name for value in graph.input] == ["features"]


def test_output_named_interest(onnx_path) -> None:
    graph = onnx.load(str(onnx_path)).graph
    assert [value.name for value in graph.output] == ["interest"]


def test_batch_dimension_dynamic(onnx_path, training_run) -> None:
    dims = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert dims[1].dim_value == training_run.splits["test"].features.shape[1]


def test_opset_pinned(onnx_path) -> None:
    model = onnx.load(str(onnx_path))
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] == export.OPSET


def test_graph_passes_checker(onnx_path) -> None:
    onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)


def test_parity_on_every_test_row(onnx_path, training_run) -> None:
    features = training_run.splits["test"].features
    assert parity(training_run.model, onnx_path, features) <= export.PARITY_TOLERANCE


def test_onnxruntime_output_shape(onnx_path, training_run) -> None:
    features = training_run.splits["test"].features[:7]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (output,) = session.run(["interest"], {"features": features})
    assert output.shape == (7, 1)
    assert output.dtype == np.float32


def test_parity_detects_changed_weights(onnx_path, training_run, tmp_path) -> None:
    model = onnx.load(str(onnx_path))
    initializer = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weights = numpy_helper.to_array(initializer) + np.float32(0.01)
    initializer.CopyFrom(numpy_helper.from_array(weights, initializer.name))
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    features = training_run.splits["test"].features
    assert parity(training_run.model, changed, features) > export.PARITY_TOLERANCE


def test_export_rejects_parity_above_tolerance(
    training_run, tmp_path, monkeypatch
) -> None:
    # A negative tolerance makes any export fail, so the error path runs.
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)
    features = training_run.splits["test"].features[:50]
    with pytest.raises(ExportError, match=r"failed the parity check: max \|Keras"):
        export_onnx(training_run.model, features, tmp_path / "model.onnx")


def test_export_rejects_no_rows(training_run, tmp_path) -> None:
    features = training_run.splits["test"].features[:0]
    with pytest.raises(ExportError, match="no rows to compare"):
        export_onnx(training_run.model, features, tmp_path / "model.onnx")
