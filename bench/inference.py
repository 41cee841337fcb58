"""Inference alone: onnxruntime as the scorer runs it against the Keras options.

One child process builds the feature matrix of a behaviour file once and
times, on that same matrix: ``Bundle.predict`` (onnxruntime, in the
scorer's chunks), Keras ``model.predict`` with its default batch size of 32,
``model.predict`` with batch 8192, and one ``tf.function`` call on the whole
matrix. Ratios are the other method's seconds over onnxruntime's seconds in
the same repeat, so above 1 means onnxruntime is faster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import run_child, summarize

OTHERS = ("keras_predict_default", "keras_predict_8192", "tf_function")


def run(
    file: Path, model: Path, *, repeats: int, keras_default_repeats: int
) -> dict[str, Any]:
    """Measure rows per second of each method and the ratios to onnxruntime.

    Parameters
    ----------
    file:
        The behaviour file whose feature matrix is scored.
    model:
        The bundle folder; it must contain ``model.keras``.
    repeats:
        Runs of each method.
    keras_default_repeats:
        Runs of Keras' default ``predict``, which is the slowest by far.

    Returns
    -------
    dict
        ``rows``, ``features``, per method ``seconds`` and
        ``rows_per_second``, and ``ratio_to_onnxruntime`` per other method.
    """
    print(f"  inference on the feature matrix of {file.name}")
    child = run_child(
        [
            "inference",
            str(file),
            "--model",
            str(model),
            "--repeats",
            str(repeats),
            "--keras-default-repeats",
            str(min(repeats, keras_default_repeats)),
        ]
    )
    result = child.result
    rows = result["rows"]
    seconds = result["seconds"]
    methods = {
        name: {
            "seconds": summarize(samples),
            "rows_per_second": summarize([rows / s for s in samples]),
        }
        for name, samples in seconds.items()
    }
    ort = seconds["onnxruntime"]
    ratios = {
        # Keras' default predict has fewer samples; zip stops at the shorter.
        name: summarize(
            [other / base for other, base in zip(seconds[name], ort, strict=False)]
        )
        for name in OTHERS
    }
    return {
        "file": file.name,
        "rows": rows,
        "features": result["features"],
        "ort_threads": result["ort_threads"],
        "tensorflow_threads": result["tensorflow_threads"],
        "methods": methods,
        "ratio_to_onnxruntime": ratios,
        "peak_rss_bytes": summarize([child.peak_rss_bytes]),
    }
