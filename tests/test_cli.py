"""CLI tests: inputs, outputs, summaries and exit codes of ``python -m infer score``."""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infer import cli
from infer.cli import expand_inputs, find_inputs, main, parse_as_of
from tests.test_bundle import make_tiny_bundle

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return make_tiny_bundle(tmp_path / "bundle")


@pytest.fixture
def inputs(fixtures_dir: Path) -> Path:
    return fixtures_dir / "inputs"


def test_cli_single_file(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.parquet"
    code = main(
        [
            "score",
            str(inputs / "basic.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert pq.read_table(out).num_rows == 4
    assert printed.startswith("basic.csv: ok rows=5 rejected=0 users=2 candidates=4")


def test_cli_bad_file_skipped(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.csv"
    code = main(
        [
            "score",
            str(inputs / "basic.csv"),
            str(inputs / "empty.csv"),
            str(inputs / "crlf.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(pd.read_csv(out)) == 6
    assert lines[1].startswith("empty.csv: failed after ")
    assert lines[1].endswith(
        "the file is empty (0 bytes); expected a header line "
        "and at least one event row; check that the producer "
        "finished writing it"
    )


def test_cli_all_failed_no_output(
    inputs: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    code = main(
        [
            "score",
            str(inputs / "header_only.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_cli_folder_per_file_outputs(
    inputs: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("basic.csv", "events.jsonl.gz"):
        shutil.copy(inputs / name, folder / name)
    out = tmp_path / "out"
    code = main(
        [
            "score",
            str(folder),
            "--model",
            str(bundle_dir),
            "--out",
            f"{out}/",
            "--format",
            "jsonl",
            "--no-progress",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "basic.csv.jsonl",
        "events.jsonl.gz.jsonl",
    ]


def test_cli_top_k_and_as_of(inputs: Path, bundle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    code = main(
        [
            "score",
            str(inputs / "basic.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
            "--top-k",
            "1",
            "--as-of",
            "2024-06-10T08:00:00Z",
            "--no-progress",
        ]
    )
    scores = pd.read_csv(out)
    assert code == 0
    assert scores["rank"].tolist() == [1, 1]
    assert scores["as_of"].unique().tolist() == [1_718_006_400]


def test_cli_column_mapping(bundle_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    source.write_text("userId,genre,kind,ts\n1,jazz,view,1718000000\n")
    out = tmp_path / "scores.csv"
    code = main(
        [
            "score",
            str(source),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
            "--column",
            "userId=user_id",
            "--column",
            "genre=topic",
            "--column",
            "kind=event_type",
            "--column",
            "ts=timestamp",
            "--no-progress",
        ]
    )
    assert code == 0
    assert pd.read_csv(out)["topic"].tolist() == ["jazz"]


def test_cli_invalid_bundle(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "score",
            str(inputs / "basic.csv"),
            "--model",
            str(tmp_path),
            "--out",
            str(tmp_path / "s.parquet"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "manifest not found" in capsys.readouterr().err


def test_cli_no_inputs(bundle_dir: Path, tmp_path: Path) -> None:
    code = main(
        [
            "score",
            str(tmp_path / "none*.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(tmp_path / "s.parquet"),
            "--no-progress",
        ]
    )
    assert code == 2


def test_cli_invalid_column_option(bundle_dir: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "score",
                "a.csv",
                "--model",
                str(bundle_dir),
                "--out",
                "s.parquet",
                "--column",
                "genre",
            ]
        )
    assert caught.value.code == 2


def test_expand_inputs_glob_and_folder(inputs: Path) -> None:
    files, unmatched = expand_inputs([str(inputs / "*.csv.gz"), str(inputs)])
    assert files[:2] == [inputs / "events.csv.gz", inputs / "plain_text.csv.gz"]
    assert len(files) == len(list(inputs.iterdir()))
    assert unmatched == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1718000000", 1_718_000_000),
        ("2024-06-10T06:13:20Z", 1_718_000_000),
        ("2024-06-10T08:13:20+02:00", 1_718_000_000),
        ("2024-06-10T06:13:20", 1_718_000_000),
    ],
)
def test_parse_as_of(text: str, expected: int) -> None:
    assert parse_as_of(text) == expected


def test_help_documents_units() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infer", "score", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for option, unit in [
        ("--as-of", "epoch seconds or ISO-8601"),
        ("--top-k", "topics of each user"),
        ("--threads", "CPUs this process may"),
        ("--format", "parquet"),
    ]:
        assert option in done.stdout
        assert unit in " ".join(done.stdout.split())


def score(*args: str) -> int:
    return main(["score", *args, "--no-progress"])


def test_cli_unmatched_input_fails(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.csv"
    missing = str(tmp_path / "missing.csv")
    code = score(
        str(inputs / "basic.csv"),
        missing,
        "--model",
        str(bundle_dir),
        "--out",
        str(out),
    )
    captured = capsys.readouterr()
    assert code == 1
    assert len(pd.read_csv(out)) == 4
    assert captured.out.startswith(f"{missing}: failed: no behaviour file found")
    assert "1 input(s) matched no file" in captured.err


def test_cli_out_is_input_rejected(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.csv"
    shutil.copy(inputs / "basic.csv", source)
    before = source.read_bytes()
    code = score(
        str(source),
        "--model",
        str(bundle_dir),
        "--out",
        str(tmp_path / "." / "events.csv"),
        "--format",
        "csv",
    )
    assert code == 2
    assert source.read_bytes() == before
    assert "scoring would overwrite it" in capsys.readouterr().err


@pytest.mark.parametrize("as_of", ["2030-01-01T00:00:00Z", "1893456000"])
def test_cli_as_of_after_events_fails(
    inputs: Path,
    bundle_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    as_of: str,
) -> None:
    out = tmp_path / "scores.csv"
    code = score(
        str(inputs / "basic.csv"),
        "--model",
        str(bundle_dir),
        "--out",
        str(out),
        "--as-of",
        as_of,
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert not out.exists()
    assert printed.startswith("basic.csv: failed after ")
    assert printed.rstrip().endswith(
        "0 candidates: no events in the 90-day lookback before as_of "
        "2030-01-01T00:00:00Z (1893456000); check --as-of"
    )


def test_parse_as_of_milliseconds() -> None:
    assert parse_as_of("1718000000000") == 1_718_000_000


@pytest.mark.parametrize("text", ["-5", "0", "1989-12-31T23:59:59Z", "10**20", "soon"])
def test_parse_as_of_invalid(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="epoch milliseconds"):
        parse_as_of(text)


def test_cli_negative_as_of_usage_error(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        score(
            str(inputs / "basic.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(tmp_path / "s.csv"),
            "--as-of",
            "-5",
        )
    assert caught.value.code == 2
    assert "ISO-8601 such as 2024-06-10T06:13:20Z" in capsys.readouterr().err


def test_cli_out_parent_is_file(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    code = score(
        str(inputs / "basic.csv"),
        "--model",
        str(bundle_dir),
        "--out",
        str(blocker / "sub" / "s.parquet"),
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert f"{blocker} is a file, not a folder" in captured.err


@pytest.mark.parametrize("name", ["s.csv.gz", "s.jsonl.gz"])
def test_cli_gzip_output(
    inputs: Path, bundle_dir: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    code = score(
        str(inputs / "basic.csv"), "--model", str(bundle_dir), "--out", str(out)
    )
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert code == 0
    assert len(lines) == (5 if name.startswith("s.csv") else 4)


@pytest.mark.parametrize("name", ["s.txt", "scores", "s.parquet.gz"])
def test_cli_unknown_out_suffix(
    inputs: Path,
    bundle_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    code = score(
        str(inputs / "basic.csv"),
        "--model",
        str(bundle_dir),
        "--out",
        str(tmp_path / name),
    )
    assert code == 2
    assert "cannot tell the output format" in capsys.readouterr().err


def test_cli_unknown_suffix_with_format(
    inputs: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s.txt"
    code = score(
        str(inputs / "basic.csv"),
        "--model",
        str(bundle_dir),
        "--out",
        str(out),
        "--format",
        "csv",
    )
    assert code == 0
    assert len(pd.read_csv(out)) == 4


def test_cli_folder_mirrors_subfolders(
    inputs: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    for part in ("a", "b"):
        (folder / part).mkdir(parents=True)
        shutil.copy(inputs / "basic.csv", folder / part / "events.csv")
    out = tmp_path / "out"
    code = score(str(folder), "--model", str(bundle_dir), "--out", f"{out}/")
    assert code == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet")) == [
        "a/events.csv.parquet",
        "b/events.csv.parquet",
    ]


def test_find_inputs_glob_base(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "e.csv").write_text("")
    files, _ = find_inputs([str(tmp_path / "x" / "**" / "*.csv")])
    assert [item.relative.as_posix() for item in files] == ["y/e.csv"]


def score_args(paths: list[Path], bundle_dir: Path, out: Path) -> list[str]:
    return [
        "score",
        *[str(path) for path in paths],
        "--model",
        str(bundle_dir),
        "--out",
        str(out),
        "--no-progress",
    ]


def test_cli_list_column_file_skipped(
    inputs: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "lists.parquet"
    table = pa.table(
        {
            "user_id": ["u1"],
            "topic": [["a", "b"]],
            "event_type": ["view"],
            "timestamp": [1_718_000_000],
        }
    )
    pq.write_table(table, bad)
    out = tmp_path / "scores.csv"
    code = main(score_args([bad, inputs / "basic.csv"], bundle_dir, out))
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(pd.read_csv(out)) == 4
    assert re.fullmatch(
        r"lists\.parquet: failed after \d+\.\d\ds: column 'topic' at data row 1: "
        r"expected a string, found \[\"a\", \"b\"\] \(type list<element: string>\); "
        r"write one string per row in this column \(one row per topic for an "
        r"event with several topics\)",
        lines[0],
    )


def fail_on(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make score_file raise a RuntimeError for the file called ``name``."""
    real = cli.score_file

    def score_file(path: Path, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == name:
            raise RuntimeError("injected failure")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cli, "score_file", score_file)


def test_cli_unexpected_error_continues(
    inputs: Path,
    bundle_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fail_on("crlf.csv", monkeypatch)
    out = tmp_path / "scores.csv"
    code = main(
        score_args([inputs / "crlf.csv", inputs / "basic.csv"], bundle_dir, out)
    )
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert code == 1
    assert len(pd.read_csv(out)) == 4
    assert re.fullmatch(
        r"crlf\.csv: failed after \d+\.\d\ds: unexpected error RuntimeError: "
        r"injected failure; the scorer does not check for this problem, so check "
        r"the file's format, encoding and column types, and run again with "
        r"--debug to see the traceback",
        lines[0],
    )
    assert lines[1].startswith("basic.csv: ok ")
    assert "Traceback" not in printed.err


def test_cli_unexpected_error_debug_traceback(
    inputs: Path,
    bundle_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fail_on("crlf.csv", monkeypatch)
    args = score_args([inputs / "crlf.csv"], bundle_dir, tmp_path / "scores.csv")
    code = main([*args, "--debug"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: injected failure" in err


def test_cli_summary_counts_ignored(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = 1_718_000_000
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,topic,event_type,timestamp\n"
        f"u1,a,view,{t0 - 200 * 86_400}\n"
        f"u1,a,view,{t0}\n"
        f"u1,b,view,{t0 + 60}\n"
    )
    args = score_args([path], bundle_dir, tmp_path / "scores.csv")
    code = main([*args, "--as-of", str(t0)])
    line = capsys.readouterr().out.splitlines()[0]
    assert code == 0
    assert re.fullmatch(
        r"events\.csv: ok rows=3 rejected=0 users=1 candidates=1 "
        r"ignored_before_lookback=1 ignored_after_as_of=1 unseen_event_types=0 "
        rf"timestamps=seconds as_of={t0} seconds=\d+\.\d\d",
        line,
    )
