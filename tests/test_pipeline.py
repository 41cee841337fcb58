"""Whole training runs: bundle layout, manifest keys, report, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from train import export, report
from train.__main__ import main
from train.config import BaselineSettings, ModelSettings, defaults_for
from train.simulate import DEFAULT_SAMPLE, load_simulated, simulate_events, write_events

# Every manifest key that users and scripts rely on, as dotted paths.
REQUIRED_KEYS = [
    "format_version",
    "model_version",
    "created_at",
    "onnx.file",
    "onnx.sha256",
    "onnx.opset",
    "onnx.input",
    "onnx.output",
    "onnx.parity_max_abs_diff",
    "features.names",
    "features.config",
    "labels.lookback_days",
    "labels.horizon_days",
    "labels.stride_days",
    "event_types",
    "data.source",
    "data.files",
    "data.events",
    "data.users",
    "data.start",
    "data.end",
    *[
        f"splits.{split}.{key}"
        for split in ("train", "validation", "test")
        for key in ("cutoffs", "rows", "start", "end")
    ],
    *[
        f"metrics.test.{model}.{metric}"
        for model in ("model", "exp_decay", "no_decay", "ridge")
        for metric in ("mse", "mae", "ndcg_at_3")
    ],
    "metrics.test.exp_decay.half_life_days",
    "metrics.test.model_minus_exp_decay_mse_ci95",
    *[
        f"versions.{name}"
        for name in ("python", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime")
    ],
]


def lookup(manifest: dict, dotted: str):
    value = manifest
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.fixture(scope="module")
def manifest(trained_bundle) -> dict:
    return json.loads((trained_bundle / "manifest.json").read_text())


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_manifest_has_key(manifest, key) -> None:
    lookup(manifest, key)


def test_manifest_format_version(manifest) -> None:
    assert manifest["format_version"] == 1


def test_manifest_parity_within_tolerance(manifest) -> None:
    assert manifest["onnx"]["parity_max_abs_diff"] <= 1e-5


def test_manifest_data_files_fingerprinted(manifest) -> None:
    entry = manifest["data"]["files"][0]
    assert len(entry["sha256"]) == 64
    assert entry["name"]


def test_manifest_onnx_sha256_matches_file(manifest, trained_bundle) -> None:
    actual = export.sha256_file(trained_bundle / manifest["onnx"]["file"])
    assert manifest["onnx"]["sha256"] == actual


def test_manifest_feature_names_match_config(manifest) -> None:
    from infer.features import FeatureConfig, feature_names

    config = FeatureConfig.from_dict(manifest["features"]["config"])
    assert feature_names(config) == manifest["features"]["names"]


def test_manifest_event_types_catch_all_last(manifest) -> None:
    assert manifest["event_types"][-1] == "other"
    assert manifest["features"]["config"]["event_types"] == manifest["event_types"]


def test_manifest_splits_ordered(manifest) -> None:
    splits = manifest["splits"]
    assert splits["train"]["label_end"] <= splits["validation"]["start"]
    assert splits["validation"]["label_end"] <= splits["test"]["start"]


def test_manifest_metrics_finite(manifest) -> None:
    for model in ("model", "exp_decay", "no_decay", "ridge"):
        for metric in ("mse", "mae", "ndcg_at_3"):
            assert math.isfinite(manifest["metrics"]["test"][model][metric]), (
                model,
                metric,
            )


def test_manifest_interval_ordered(manifest) -> None:
    low, high = manifest["metrics"]["test"]["model_minus_exp_decay_mse_ci95"]
    assert low <= high


def test_bundle_has_files(trained_bundle) -> None:
    names = {path.name for path in trained_bundle.iterdir()}
    expected = {
        "model.onnx",
        "model.keras",
        "manifest.json",
        "report.md",
        "learning_curves.png",
        "predicted_vs_observed.png",
        "decay_curves.png",
    }
    assert expected <= names


def test_bundle_named_by_model_version(manifest, trained_bundle) -> None:
    assert trained_bundle.name == manifest["model_version"]


def test_latest_points_at_bundle(trained_bundle) -> None:
    latest = trained_bundle.parent / "latest"
    assert latest.is_symlink()
    assert latest.resolve() == trained_bundle.resolve()


def test_no_staging_folder_left(trained_bundle) -> None:
    assert not list(trained_bundle.parent.glob(".staging-*"))


def test_report_has_metrics_table(trained_bundle) -> None:
    text = (trained_bundle / "report.md").read_text()
    assert "| model (MLP) |" in text
    assert "95 % bootstrap interval" in text
    assert "![decay curves](decay_curves.png)" in text


def test_plots_are_png(trained_bundle) -> None:
    for name in (
        "learning_curves.png",
        "predicted_vs_observed.png",
        "decay_curves.png",
    ):
        assert (trained_bundle / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.slow
def test_failed_export_leaves_no_bundle(tmp_path, monkeypatch) -> None:
    from train.pipeline import train_bundle

    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)
    data = load_simulated(replace(DEFAULT_SAMPLE, users=80, days=100, seed=5))
    settings = replace(
        defaults_for("simulated"),
        model=ModelSettings(max_epochs=1),
        baselines=BaselineSettings(bootstrap_samples=20),
    )
    with pytest.raises(export.ExportError):
        train_bundle(data, settings, tmp_path, verbose=0, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_fit_on_behaviour_file(tmp_path, capsys) -> None:
    events = simulate_events(replace(DEFAULT_SAMPLE, users=120, days=100, seed=9))
    source = tmp_path / "events.csv.gz"
    write_events(events, source)
    out = tmp_path / "artifacts"
    code = main(
        ["fit", "--data", str(source), "--out", str(out), "--epochs", "2", "--quiet"]
    )
    printed = capsys.readouterr().out
    bundle = (out / "latest").resolve()
    assert code == 0
    assert f"bundle: {bundle}" in printed
    assert "| model (MLP) |" in printed
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["data"]["source"] == "files"
    assert manifest["data"]["files"][0]["name"] == "events.csv.gz"


def grid_manifest(half_life: float, alpha: float) -> dict:
    return {
        "metrics": {
            "test": {
                "exp_decay": {"half_life_days": half_life},
                "ridge": {"alpha": alpha},
            }
        },
        "settings": {
            "baselines": {
                "half_life_grid_days": [1.0, 30.0, 3650.0],
                "ridge_alphas": [0.1, 1.0, 10.0],
            }
        },
    }


def test_grid_edge_largest_half_life() -> None:
    assert report.grid_edge_notes(grid_manifest(3650.0, 1.0)) == (
        "The tuned half-life, 3650 days, is the largest value tried, so the "
        "exponential decay is effectively none on this data."
    )


def test_grid_edge_smallest_alpha() -> None:
    assert report.grid_edge_notes(grid_manifest(30.0, 0.1)).startswith(
        "The tuned ridge alpha, 0.1, is the smallest value tried"
    )


def test_grid_edge_inside_grid() -> None:
    assert report.grid_edge_notes(grid_manifest(30.0, 1.0)) == ""


def test_report_mentions_grid_edge(manifest, trained_bundle) -> None:
    text = (trained_bundle / "report.md").read_text()
    notes = report.grid_edge_notes(manifest)
    assert f"were chosen on the validation split.\n{notes}\n" in text
