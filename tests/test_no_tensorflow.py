"""The scoring stage must run without TensorFlow, Keras or tf2onnx loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_bundle import make_tiny_bundle

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
from infer.cli import main
code = main(["score", sys.argv[1], "--model", sys.argv[2], "--out", sys.argv[3],
             "--no-progress"])
loaded = sorted(name for name in ("tensorflow", "keras", "tf2onnx")
                if name in sys.modules)
print("LOADED=" + ",".join(loaded))
sys.exit(code)
"""


def test_score_without_tensorflow(fixtures_dir: Path, tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "bundle")
    out = tmp_path / "scores.parquet"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(fixtures_dir / "inputs" / "basic.csv"),
            str(bundle),
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert "LOADED=\n" in done.stdout


def test_no_tensorflow_import_in_source() -> None:
    for path in sorted((REPO_ROOT / "infer").rglob("*.py")):
        text = path.read_text()
        for name in ("tensorflow", "keras", "tf2onnx"):
            assert f"import {name}" not in text, path
            assert f"from {name}" not in text, path
