"""Export the Keras model to ONNX and prove that onnxruntime matches it.

tf2onnx converting a ``tf.function`` straight from Keras 3 leaves the
Normalization layer's mean and variance as extra graph inputs. Freezing
the concrete function first turns every variable into a constant, so the
ONNX graph has exactly one input, ``features`` (float32, [batch,
n_features]), and one output, ``interest`` (float32, [batch, 1]).

An export counts only once onnxruntime has run it on every given row and
matched Keras within ``PARITY_TOLERANCE``: tf2onnx can return a graph
after skipping an operator it could not convert.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from train.model import INPUT_NAME, OUTPUT_NAME, predict

# Opset 17 is the newest that tf2onnx 1.17.0 was run with here, and
# onnxruntime 1.32.0 supports it.
OPSET = 17
PARITY_TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The ONNX export failed its checks."""


@dataclass(frozen=True)
class ExportResult:
    """The exported ONNX file and the measurements of its checks."""

    path: Path
    sha256: str
    opset: int
    parity_max_abs_diff: float
    parity_rows: int


def to_onnx(model: keras.Model, n_features: int) -> onnx.ModelProto:
    """Convert the model to an ONNX graph with named input and output.

    Raises
    ------
    onnx.checker.ValidationError
        If the converted graph is not valid ONNX.
    """
    signature = (tf.TensorSpec((None, n_features), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=signature)
    def serve(features: tf.Tensor) -> tf.Tensor:
        return model(features, training=False)

    # Both calls log a deprecation warning about TF1 graph APIs on every
    # export; the frozen graph is what tf2onnx converts, so hide it.
    tf_logger = tf.get_logger()
    level = tf_logger.level
    tf_logger.setLevel("ERROR")
    try:
        frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            input_names=[frozen.inputs[0].name],
            output_names=[frozen.outputs[0].name],
            opset=OPSET,
        )
    finally:
        tf_logger.setLevel(level)
    _rename_tensor(proto, proto.graph.input[0].name, INPUT_NAME)
    _rename_tensor(proto, proto.graph.output[0].name, OUTPUT_NAME)
    _set_batch_dim(proto.graph.input[0], n_features)
    _set_batch_dim(proto.graph.output[0], 1)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _rename_tensor(proto: onnx.ModelProto, old: str, new: str) -> None:
    """Rename a graph input or output and every node reference to it."""
    if old == new:
        return
    for value in (*proto.graph.input, *proto.graph.output):
        if value.name == old:
            value.name = new
    for node in proto.graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def _set_batch_dim(value: onnx.ValueInfoProto, width: int) -> None:
    """Declare the shape [batch, width], with a symbolic batch dimension."""
    dims = value.type.tensor_type.shape.dim
    del dims[:]
    dims.add().dim_param = "batch"
    dims.add().dim_value = width


def parity(model: keras.Model, onnx_path: Path, features: np.ndarray) -> float:
    """Return max |Keras - onnxruntime| over the given rows.

    The onnxruntime session uses the CPU provider, one thread, so the
    check measures the graph and not thread scheduling.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    onnx_out = session.run([OUTPUT_NAME], {INPUT_NAME: features.astype(np.float32)})[0]
    keras_out = predict(model, features)
    if onnx_out.shape != (len(features), 1):
        raise ExportError(
            f"ONNX output {OUTPUT_NAME!r} has shape {onnx_out.shape}, expected "
            f"({len(features)}, 1); the export is broken, do not ship it"
        )
    if len(features) == 0:
        return 0.0
    return float(np.max(np.abs(onnx_out.reshape(-1) - keras_out)))


def export_onnx(model: keras.Model, features: np.ndarray, path: Path) -> ExportResult:
    """Write ``model`` to ``path`` as ONNX and check parity on ``features``.

    Parameters
    ----------
    model:
        The trained Keras model.
    features:
        Rows to compare Keras and onnxruntime on (the test rows); at least
        one.
    path:
        Where to write the ``.onnx`` file.

    Raises
    ------
    ExportError
        If there are no rows to compare, or onnxruntime differs from Keras
        by more than ``PARITY_TOLERANCE`` on any row.
    """
    if len(features) == 0:
        raise ExportError(
            "cannot check ONNX parity: no rows to compare Keras and onnxruntime on"
        )
    proto = to_onnx(model, features.shape[1])
    onnx.save(proto, str(path))
    max_diff = parity(model, path, features)
    if not max_diff <= PARITY_TOLERANCE:
        raise ExportError(
            f"ONNX export of {path.name} failed the parity check: max |Keras - "
            f"onnxruntime| is {max_diff:.3g} over {len(features)} rows, expected "
            f"<= {PARITY_TOLERANCE:g}; check that the tf2onnx, TensorFlow and "
            f"onnxruntime versions match the pins in pyproject.toml"
        )
    return ExportResult(
        path=path,
        sha256=sha256_file(path),
        opset=OPSET,
        parity_max_abs_diff=max_diff,
        parity_rows=len(features),
    )


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
