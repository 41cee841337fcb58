"""The bundle's ``report.md`` and its PNG plots.

The report puts the model beside every baseline on the same test rows,
with the bootstrap interval of the model's MSE minus the tuned exponential
decay's, the same metrics per slice, and three plots: learning curves,
predicted against observed interest, and interest against days since the
last event for each event type beside the tuned exponential decay.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Files only: no display on build machines or in CI.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from train.labels import LabelledSet  # noqa: E402

MODEL_LABELS = {
    "model": "model (MLP)",
    "exp_decay": "exponential decay (tuned)",
    "no_decay": "no decay",
    "ridge": "ridge",
}
LEARNING_CURVES = "learning_curves.png"
PREDICTED_VS_OBSERVED = "predicted_vs_observed.png"
DECAY_CURVES = "decay_curves.png"


def metrics_table(test_metrics: Mapping[str, Any]) -> str:
    """Return the test metrics of the model and baselines as a Markdown table."""
    lines = [
        "| model | MSE | MAE | NDCG@3 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, label in MODEL_LABELS.items():
        entry = test_metrics[key]
        if key == "exp_decay":
            label = f"{label}, half-life {entry['half_life_days']:g} d"
        lines.append(
            f"| {label} | {entry['mse']:.5f} | {entry['mae']:.5f} | "
            f"{entry['ndcg_at_3']:.4f} |"
        )
    low, high = test_metrics["model_minus_exp_decay_mse_ci95"]
    difference = test_metrics["model"]["mse"] - test_metrics["exp_decay"]["mse"]
    lines.append("")
    lines.append(
        f"Model MSE minus tuned exponential decay MSE: {difference:+.5f}, "
        f"95 % bootstrap interval over users [{low:+.5f}, {high:+.5f}]."
    )
    return "\n".join(lines)


def verdict(test_metrics: Mapping[str, Any]) -> str:
    """Return one sentence saying whether the model beats the tuned decay."""
    low, high = test_metrics["model_minus_exp_decay_mse_ci95"]
    model_mse = test_metrics["model"]["mse"]
    decay_mse = test_metrics["exp_decay"]["mse"]
    if high < 0:
        return (
            f"The model beats the tuned exponential decay on test MSE "
            f"({model_mse:.5f} vs {decay_mse:.5f}), and the whole 95 % interval of "
            f"the difference is below 0."
        )
    if low > 0:
        return (
            f"The model does not beat the tuned exponential decay: its test MSE is "
            f"{model_mse:.5f} against {decay_mse:.5f}, and the whole 95 % interval "
            f"of the difference is above 0."
        )
    return (
        f"The model does not clearly beat the tuned exponential decay: test MSE "
        f"{model_mse:.5f} against {decay_mse:.5f}, and the 95 % interval of the "
        f"difference contains 0."
    )


def grid_edge_notes(manifest: Mapping[str, Any]) -> str:
    """Return one sentence per tuned baseline setting at the edge of its grid.

    A tuned value at the edge of the grid was not bracketed by the
    validation search, so the best value may lie outside the grid. An
    empty string means every tuned value is inside its grid.
    """
    test = manifest["metrics"]["test"]
    grids = manifest["settings"]["baselines"]
    half_life = test["exp_decay"]["half_life_days"]
    alpha = test["ridge"]["alpha"]
    half_lives = grids["half_life_grid_days"]
    alphas = grids["ridge_alphas"]
    notes = []
    if len(half_lives) > 1 and half_life == max(half_lives):
        notes.append(
            f"The tuned half-life, {half_life:g} days, is the largest value tried, "
            f"so the exponential decay is effectively none on this data."
        )
    elif len(half_lives) > 1 and half_life == min(half_lives):
        notes.append(
            f"The tuned half-life, {half_life:g} days, is the smallest value "
            f"tried, so a shorter half-life might fit the validation split better."
        )
    if len(alphas) > 1 and alpha == max(alphas):
        notes.append(
            f"The tuned ridge alpha, {alpha:g}, is the largest value tried, so a "
            f"stronger penalty might fit the validation split better."
        )
    elif len(alphas) > 1 and alpha == min(alphas):
        notes.append(
            f"The tuned ridge alpha, {alpha:g}, is the smallest value tried, so a "
            f"weaker penalty might fit the validation split better."
        )
    return " ".join(notes)


def _slices_table(slices: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        "| slice | rows | "
        + " | ".join(f"{k} MSE" for k in MODEL_LABELS)
        + " | "
        + " | ".join(f"{k} NDCG@3" for k in MODEL_LABELS)
        + " |",
        "| --- | ---: |" + " ---: |" * (2 * len(MODEL_LABELS)),
    ]
    for name, entry in slices.items():
        mses = " | ".join(f"{entry[k]['mse']:.5f}" for k in MODEL_LABELS)
        ndcgs = " | ".join(f"{entry[k]['ndcg_at_3']:.4f}" for k in MODEL_LABELS)
        lines.append(f"| {name} | {entry['rows']} | {mses} | {ndcgs} |")
    return "\n".join(lines)


def write_report(
    folder: Path,
    manifest: Mapping[str, Any],
    history: Mapping[str, list[float]],
    test_rows: LabelledSet,
    predictions: Mapping[str, np.ndarray],
) -> Path:
    """Write ``report.md`` and its plots into the bundle folder.

    Parameters
    ----------
    folder:
        The bundle folder being written.
    manifest:
        The bundle's manifest; the report quotes its metrics and settings.
    history:
        Keras' per-epoch history (``loss``, ``val_loss``).
    test_rows:
        The test rows, for the plots.
    predictions:
        Test predictions by model key (``model``, ``exp_decay``, ...).

    Returns
    -------
    Path
        The path of ``report.md``.
    """
    metrics = manifest["metrics"]
    plot_learning_curves(folder / LEARNING_CURVES, history, metrics["training"])
    plot_predicted_vs_observed(folder / PREDICTED_VS_OBSERVED, test_rows, predictions)
    plot_decay_curves(
        folder / DECAY_CURVES,
        test_rows,
        predictions,
        metrics["test"]["exp_decay"]["half_life_days"],
        manifest["event_types"],
    )
    labels = manifest["labels"]
    splits = manifest["splits"]
    data = manifest["data"]
    split_lines = "\n".join(
        f"| {name} | {s['cutoffs']} | {s['rows']} | {s['start']} | {s['end']} |"
        for name, s in splits.items()
    )
    text = f"""# Training report: {manifest["model_version"]}

Created {manifest["created_at"]} from the `{data["source"]}` data:
{data["events"]} events of {data["users"]} users, {data["start"]} to {data["end"]}.

Label: share of the user's event weight in the {labels["horizon_days"]:g} days after
each cutoff that falls on the topic; history is the {labels["lookback_days"]:g} days
before it; cutoffs every {labels["stride_days"]:g} days.

| split | cutoffs | rows | first cutoff | last cutoff |
| --- | ---: | ---: | --- | --- |
{split_lines}

## Test metrics

{metrics_table(metrics["test"])}

{verdict(metrics["test"])}

The exponential decay's half-life and the ridge penalty (alpha
{metrics["test"]["ridge"]["alpha"]:g}) were chosen on the validation split.
{grid_edge_notes(manifest)}
ONNX parity: max |Keras - onnxruntime| = {manifest["onnx"]["parity_max_abs_diff"]:.3g}
over {manifest["onnx"]["parity_rows"]} test rows.

## Test metrics by slice

Heavy users have more than {metrics["test_slices_heavy_threshold_events"]:g} events
in the lookback (the median over training users and cutoffs); new topics were
first seen at most 30 days before the cutoff.

{_slices_table(metrics["test_slices"])}

## Learning curves

Training stopped after {metrics["training"]["epochs_run"]} epochs; the weights of
epoch {metrics["training"]["best_epoch"]} (lowest validation loss) were kept.

![learning curves]({LEARNING_CURVES})

## Predicted against observed interest

![predicted against observed]({PREDICTED_VS_OBSERVED})

## Interest against days since the last event

Mean prediction over the test rows whose latest event on the topic has the
given type, by days since that event, beside the tuned exponential decay
and the observed label.

![decay curves]({DECAY_CURVES})
"""
    path = folder / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def plot_learning_curves(
    path: Path, history: Mapping[str, list[float]], training: Mapping[str, Any]
) -> None:
    """Plot training and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training loss (MSE)")
    ax.plot(epochs, history["val_loss"], label="validation loss (MSE)")
    ax.axvline(training["best_epoch"], color="grey", linestyle=":", label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_predicted_vs_observed(
    path: Path, rows: LabelledSet, predictions: Mapping[str, np.ndarray]
) -> None:
    """Plot a 2-D histogram of model vs label, and binned calibration of every model."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.hexbin(
        predictions["model"],
        rows.labels,
        gridsize=40,
        bins="log",
        extent=(0, 1, 0, 1),
        cmap="viridis",
    )
    left.plot([0, 1], [0, 1], color="white", linewidth=1)
    left.set_xlabel("predicted interest (model)")
    left.set_ylabel("observed share")
    left.set_title("test rows (log count)")
    edges = np.linspace(0, 1, 21)
    for key, label in MODEL_LABELS.items():
        values = predictions[key]
        which = np.clip(np.digitize(values, edges) - 1, 0, len(edges) - 2)
        counts = np.bincount(which, minlength=len(edges) - 1)
        filled = counts > 0
        mean_pred = np.bincount(which, weights=values, minlength=len(edges) - 1)
        mean_obs = np.bincount(which, weights=rows.labels, minlength=len(edges) - 1)
        right.plot(
            mean_pred[filled] / counts[filled],
            mean_obs[filled] / counts[filled],
            marker="o",
            markersize=3,
            label=label,
        )
    right.plot([0, 1], [0, 1], color="grey", linestyle=":")
    right.set_xlabel("mean predicted interest (bin)")
    right.set_ylabel("mean observed share")
    right.set_title("calibration, 20 bins")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_decay_curves(
    path: Path,
    rows: LabelledSet,
    predictions: Mapping[str, np.ndarray],
    half_life_days: float,
    event_types: list[str],
) -> None:
    """Plot interest against days since the last event, one panel per event type.

    Event types that are the latest event of no test row (often the
    catch-all type) get no panel.
    """
    last_any = rows.column("days_since_last_any")
    shown = [
        t
        for t in event_types
        if (rows.column(f"days_since_last_{t}") <= last_any).any()
    ]
    event_types = shown or event_types[:1]
    lookback = float(np.max(last_any)) if len(last_any) else 1.0
    edges = np.unique(np.geomspace(0.25, max(lookback, 0.5), 16))
    edges = np.r_[0.0, edges]
    fig, axes = plt.subplots(
        1,
        len(event_types),
        figsize=(4 * len(event_types), 3.8),
        sharey=True,
        squeeze=False,
    )
    for ax, event_type in zip(axes[0], event_types, strict=True):
        since = rows.column(f"days_since_last_{event_type}")
        latest = since <= last_any
        ax.set_title(f"latest event: {event_type} ({int(latest.sum())} rows)")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("days since last event on the topic")
        if not latest.any():
            continue
        which = np.clip(np.digitize(since[latest], edges) - 1, 0, len(edges) - 2)
        counts = np.bincount(which, minlength=len(edges) - 1)
        filled = counts >= 5
        centres = np.sqrt(np.maximum(edges[:-1], 0.05) * edges[1:])
        series = (
            ("model", predictions["model"]),
            (f"exp decay, half-life {half_life_days:g} d", predictions["exp_decay"]),
            ("observed", rows.labels),
        )
        for label, values in series:
            sums = np.bincount(which, weights=values[latest], minlength=len(edges) - 1)
            ax.plot(
                centres[filled],
                sums[filled] / counts[filled],
                marker="o",
                markersize=3,
                label=label,
                linestyle="--" if label == "observed" else "-",
            )
    axes[0][0].set_ylabel("mean interest")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
