"""The training driver: from canonical events to a published model bundle.

``train_bundle`` reads as the list of steps; each step is one function in
this package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from infer.features import FeatureConfig
from infer.schema import TIMESTAMP, USER_ID
from train import baselines, bundle, evaluate, report
from train.config import TrainSettings
from train.export import export_onnx
from train.labels import (
    CUTOFF,
    SPLIT_NAMES,
    LabelledSet,
    build_dataset,
    event_type_vocabulary,
    make_cutoffs,
    sort_by_time,
    split_cutoffs,
)
from train.model import constant_features, fit_model, predict
from train.sources import SourceData

REPO_ROOT = Path(__file__).resolve().parents[1]


class TrainingDataError(ValueError):
    """The data spans too little time, or too few users, for the time splits."""


@dataclass
class TrainingRun:
    """Outputs of one training run, for the CLI and for tests."""

    bundle: Path
    manifest: dict[str, Any]
    model: keras.Model
    splits: dict[str, LabelledSet]
    test_predictions: dict[str, np.ndarray]


def train_bundle(
    data: SourceData,
    settings: TrainSettings,
    out_dir: Path,
    *,
    verbose: int = 2,
    progress: bool = True,
) -> TrainingRun:
    """Train, evaluate and export a model; publish its bundle under ``out_dir``.

    Parameters
    ----------
    data:
        Canonical events and their fingerprint.
    settings:
        Every setting of the run (see ``train.config``).
    out_dir:
        Folder that receives ``<model_version>/`` and the ``latest`` link.
    verbose:
        Keras' progress output (0 silent, 1 bar, 2 one line per epoch).
    progress:
        Show the progress bar over cutoffs.

    Raises
    ------
    TrainingDataError
        If the data spans too little time for the splits, or a split gets
        no labelled rows.
    train.export.ExportError
        If onnxruntime does not match Keras on the test rows.
    """
    started = time.monotonic()
    created = datetime.now(tz=UTC)
    label_settings = settings.labels

    # 1. Cutoffs and the time split.
    events = sort_by_time(data.events)
    timestamps = events[TIMESTAMP].to_numpy(dtype=np.int64)
    cutoffs = make_cutoffs(int(timestamps[0]), int(timestamps[-1]), label_settings)
    try:
        split_times = split_cutoffs(cutoffs, label_settings)
    except ValueError as error:
        raise TrainingDataError(str(error)) from error

    # 2. The event-type vocabulary from the training split's events only.
    horizon_seconds = int(round(label_settings.horizon_days * 86_400))
    train_end = int(split_times["train"][-1]) + horizon_seconds
    feature_config = FeatureConfig(
        event_types=event_type_vocabulary(events, until=train_end),
        lookback_days=label_settings.lookback_days,
        windows_days=settings.features.windows_days,
        half_lives_days=settings.features.half_lives_days,
    )

    # 3. Features, labels and decay shares at every cutoff, then the split.
    every_cutoff = np.concatenate([split_times[name] for name in SPLIT_NAMES])
    dataset = build_dataset(
        events,
        every_cutoff,
        feature_config,
        label_settings,
        settings.baselines.half_life_grid_days,
        progress=progress,
    )
    splits = {
        name: dataset.select(
            np.isin(dataset.keys[CUTOFF].to_numpy(), split_times[name])
        )
        for name in SPLIT_NAMES
    }
    _require_rows(splits)
    train, validation, test = (splits[name] for name in SPLIT_NAMES)

    # 4. Baselines, tuned on validation.
    exp_decay = baselines.tune_exp_decay(
        validation.decay_shares, validation.labels, dataset.half_lives_days
    )
    ridge = baselines.tune_ridge(
        train.features,
        train.labels,
        validation.features,
        validation.labels,
        settings.baselines.ridge_alphas,
    )

    # 5. The model.
    fit_started = time.monotonic()
    fit = fit_model(
        train.features,
        train.labels,
        validation.features,
        validation.labels,
        settings.model,
        verbose=verbose,
    )
    fit_seconds = time.monotonic() - fit_started

    # 6. Evaluation on the same test rows, and on validation for reference.
    predictions = {
        name: _predict_all(rows, fit.model, exp_decay, ridge)
        for name, rows in (("validation", validation), ("test", test))
    }
    metrics = _metrics(predictions, splits, exp_decay, ridge, settings)
    metrics["training"] = {
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "fit_seconds": round(fit_seconds, 2),
    }

    # 7. The bundle: ONNX with parity, Keras model, manifest, report; then publish.
    with bundle.staging_folder(out_dir) as staging:
        exported = export_onnx(fit.model, test.features, staging / bundle.ONNX_FILE)
        fit.model.save(staging / bundle.KERAS_FILE)
        version = bundle.model_version(
            data.source, created, bundle.short_commit(REPO_ROOT)
        )
        manifest = _manifest(
            version,
            created,
            data,
            events,
            settings,
            feature_config,
            split_times,
            splits,
            metrics,
            exported,
        )
        manifest["metrics"]["training"]["total_seconds"] = round(
            time.monotonic() - started, 2
        )
        bundle.write_manifest(staging, manifest)
        report.write_report(staging, manifest, fit.history, test, predictions["test"])
        final = bundle.publish(staging, out_dir, version)
    return TrainingRun(
        bundle=final,
        manifest=manifest,
        model=fit.model,
        splits=splits,
        test_predictions=predictions["test"],
    )


def _require_rows(splits: dict[str, LabelledSet]) -> None:
    empty = [name for name, rows in splits.items() if len(rows) == 0]
    if empty:
        raise TrainingDataError(
            f"the {', '.join(empty)} split has no labelled rows: no user has events "
            f"both before and after its cutoffs; use more data, a longer "
            f"--horizon-days or a longer --lookback-days"
        )


def _predict_all(
    rows: LabelledSet,
    model: keras.Model,
    exp_decay: baselines.ExpDecay,
    ridge: baselines.Ridge,
) -> dict[str, np.ndarray]:
    return {
        "model": predict(model, rows.features),
        "exp_decay": exp_decay.predict(rows.decay_shares),
        "no_decay": rows.column("share_count_lookback"),
        "ridge": ridge.predict(rows.features),
    }


def _metrics(
    predictions: dict[str, dict[str, np.ndarray]],
    splits: dict[str, LabelledSet],
    exp_decay: baselines.ExpDecay,
    ridge: baselines.Ridge,
    settings: TrainSettings,
) -> dict[str, Any]:
    test = splits["test"]
    result: dict[str, Any] = {
        name: evaluate.evaluate_all(predictions[name], splits[name])
        for name in ("validation", "test")
    }
    for name in ("validation", "test"):
        result[name]["exp_decay"]["half_life_days"] = exp_decay.half_life_days
        result[name]["ridge"]["alpha"] = ridge.alpha
    low, high = evaluate.bootstrap_mse_difference(
        predictions["test"]["model"],
        predictions["test"]["exp_decay"],
        test.labels,
        test.keys[USER_ID],
        samples=settings.baselines.bootstrap_samples,
        seed=settings.model.seed,
    )
    result["test"]["model_minus_exp_decay_mse_ci95"] = [low, high]
    result["validation_exp_decay_mse_by_half_life"] = {
        f"{h:g}": mse for h, mse in exp_decay.validation_mse_by_half_life.items()
    }
    threshold = evaluate.heavy_user_threshold(splits["train"])
    result["test_slices_heavy_threshold_events"] = threshold
    result["test_slices"] = evaluate.evaluate_slices(
        predictions["test"], test, threshold
    )
    return result


def _manifest(
    version: str,
    created: datetime,
    data: SourceData,
    events: Any,
    settings: TrainSettings,
    feature_config: FeatureConfig,
    split_times: dict[str, np.ndarray],
    splits: dict[str, LabelledSet],
    metrics: dict[str, Any],
    exported: Any,
) -> dict[str, Any]:
    timestamps = events[TIMESTAMP].to_numpy(dtype=np.int64)
    horizon_seconds = int(round(settings.labels.horizon_days * 86_400))
    return {
        "format_version": bundle.FORMAT_VERSION,
        "model_version": version,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "onnx": {
            "file": bundle.ONNX_FILE,
            "sha256": exported.sha256,
            "opset": exported.opset,
            "input": "features",
            "output": "interest",
            "parity_max_abs_diff": exported.parity_max_abs_diff,
            "parity_rows": exported.parity_rows,
        },
        "keras_file": bundle.KERAS_FILE,
        "features": {
            "names": splits["train"].names,
            "config": feature_config.to_dict(),
            # The model ignores these: they never varied in training.
            "constant_in_training": [
                name
                for name, constant in zip(
                    splits["train"].names,
                    constant_features(splits["train"].features),
                    strict=True,
                )
                if constant
            ],
        },
        "labels": settings.labels.to_dict(),
        "event_types": list(feature_config.event_types),
        "data": {
            "source": data.source,
            "files": data.files,
            "events": int(len(events)),
            "users": int(events[USER_ID].nunique()),
            "start": bundle.iso_utc(timestamps[0]),
            "end": bundle.iso_utc(timestamps[-1]),
        },
        "splits": {
            name: {
                "cutoffs": int(len(split_times[name])),
                "rows": int(len(splits[name])),
                "start": bundle.iso_utc(split_times[name][0]),
                "end": bundle.iso_utc(split_times[name][-1]),
                "label_end": bundle.iso_utc(split_times[name][-1] + horizon_seconds),
            }
            for name in SPLIT_NAMES
        },
        "metrics": metrics,
        "settings": settings.to_dict(),
        "versions": bundle.library_versions(),
    }
