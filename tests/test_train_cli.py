"""Errors of ``python -m train fit`` for user mistakes: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.__main__ import main


@pytest.fixture
def tiny_csv(fixtures_dir: Path) -> Path:
    return fixtures_dir / "inputs" / "basic.csv"


def fit(tmp_path: Path, *args: str) -> int:
    return main(["fit", *args, "--out", str(tmp_path / "artifacts"), "--quiet"])


def test_fit_missing_data_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit(tmp_path, "--data", str(tmp_path / "missing.csv"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: training data '{tmp_path / 'missing.csv'}' not")
    assert "Traceback" not in err


def test_fit_too_little_data(
    tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit(tmp_path, "--data", str(tiny_csv))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: the train, validation, test split has no cutoffs")
    assert not (tmp_path / "artifacts" / "latest").exists()


def test_fit_invalid_mapping_target(
    tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit(tmp_path, "--data", str(tiny_csv), "--columns", "uid=user_idd")
    assert code == 2
    assert "unknown target column 'user_idd'" in capsys.readouterr().err


def test_fit_mapping_hint_names_columns(
    tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit(tmp_path, "--data", str(tiny_csv), "--columns", "userid=user_id")
    err = capsys.readouterr().err
    assert code == 2
    assert "missing required column(s) ['userid']" in err
    assert "--columns genre=topic when training" in err


def test_fit_invalid_lookback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit(tmp_path, "--lookback-days", "-1")
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: lookback_days must be > 0 days, got -1.0\n"


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_fit_invalid_epochs(
    epochs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = fit(tmp_path, "--epochs", epochs)
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: epochs must be >= 1, got {epochs}\n"
