"""SIGTERM while an output file is written leaves no temporary file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from infer.__main__ import SIGTERM_EXIT_CODE

# Writes scores with a writer that receives SIGTERM half-way through.
_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import pandas as pd
    from infer import output
    from infer.__main__ import stop_cleanly_on_sigterm

    def interrupted(scores, sink, fmt):
        sink.write(b"partial")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    stop_cleanly_on_sigterm()
    output._write = interrupted
    output.write_scores(pd.DataFrame({"a": [1]}), sys.argv[1], "csv")
    """
)


def test_sigterm_removes_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "scores.csv"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(target)],
        capture_output=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == SIGTERM_EXIT_CODE
    assert list(target.parent.iterdir()) == []
