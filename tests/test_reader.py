"""Reader tests: formats, compression, streams and the small fixture files."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infer.errors import InputContractError
from infer.reader import detect_format, read_events

# 2024-06-10T06:13:20Z
T0 = 1_718_000_000
HEADER = "user_id,topic,event_type,timestamp\n"


@pytest.fixture
def inputs(fixtures_dir: Path) -> Path:
    return fixtures_dir / "inputs"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", ("csv", False)),
        ("incoming/a.CSV.GZ", ("csv", True)),
        ("a.jsonl.gz", ("jsonl", True)),
        ("a.ndjson", ("jsonl", False)),
        ("a.parquet", ("parquet", False)),
    ],
)
def test_detect_format_from_name(name: str, expected: tuple[str, bool]) -> None:
    assert detect_format(name) == expected


def test_detect_format_unknown_suffix() -> None:
    with pytest.raises(InputContractError, match=r"a\.txt: unsupported file name"):
        detect_format("a.txt")


def test_detect_format_gzip_parquet_rejected() -> None:
    with pytest.raises(InputContractError, match="unsupported file name"):
        detect_format("a.parquet.gz")


def test_read_basic_csv_types(inputs: Path) -> None:
    result = read_events(inputs / "basic.csv")
    events = result.events
    assert list(events.columns) == [
        "user_id",
        "topic",
        "event_type",
        "timestamp",
        "item_id",
        "value",
    ]
    assert isinstance(events["user_id"].dtype, pd.CategoricalDtype)
    assert isinstance(events["topic"].dtype, pd.CategoricalDtype)
    assert events["timestamp"].dtype == "int64"
    assert events["value"].dtype == "float64"


def test_read_basic_csv_values(inputs: Path) -> None:
    events = read_events(inputs / "basic.csv").events
    assert events["value"].tolist() == [1.0, 2.0, 1.0, 1.5, 1.0]
    assert events["timestamp"].iloc[0] == T0


def test_read_without_item_id(inputs: Path) -> None:
    events = read_events(inputs / "basic.csv", keep_item_id=False).events
    assert "item_id" not in events.columns


def test_read_summary_fields(inputs: Path) -> None:
    result = read_events(inputs / "basic.csv")
    assert result.rows == 5
    assert result.format == "csv"
    assert result.compressed is False
    assert result.timestamp_unit == "seconds"
    assert result.rejected == {}


def test_read_bom_header(inputs: Path) -> None:
    events = read_events(inputs / "bom.csv").events
    assert events["user_id"].tolist() == ["u1", "u2"]


def test_read_crlf_line_ends(inputs: Path) -> None:
    events = read_events(inputs / "crlf.csv").events
    assert events["timestamp"].tolist() == [T0, T0 + 500]
    assert events["event_type"].tolist() == ["view", "click"]


def test_read_quoted_commas(inputs: Path) -> None:
    events = read_events(inputs / "quoted_commas.csv").events
    assert events["topic"].tolist() == ["jazz, smooth", 'rock, "classic"']


def test_read_epoch_milliseconds(inputs: Path) -> None:
    result = read_events(inputs / "epoch_ms.csv")
    assert result.timestamp_unit == "milliseconds"
    assert result.events["timestamp"].tolist() == [T0, T0 + 500]


def test_read_iso_mixed_offsets(inputs: Path) -> None:
    result = read_events(inputs / "iso_mixed.csv")
    assert result.timestamp_unit == "iso8601"
    assert result.events["timestamp"].tolist() == [T0, T0, T0]


def test_read_empty_file(inputs: Path) -> None:
    with pytest.raises(InputContractError) as caught:
        read_events(inputs / "empty.csv")
    assert str(caught.value) == (
        "empty.csv: the file is empty (0 bytes); expected a header line and at "
        "least one event row; check that the producer finished writing it"
    )


def test_read_header_only(inputs: Path) -> None:
    with pytest.raises(InputContractError) as caught:
        read_events(inputs / "header_only.csv")
    assert str(caught.value) == (
        "header_only.csv: the file has a header but no event rows; expected at "
        "least one event; check that the producer wrote the data"
    )


def test_read_gz_name_plain_content(inputs: Path) -> None:
    with pytest.raises(InputContractError) as caught:
        read_events(inputs / "plain_text.csv.gz")
    assert str(caught.value) == (
        "plain_text.csv.gz: the name ends in .gz but the content is not "
        "gzip-compressed (first bytes b'us', expected b'\\x1f\\x8b'); compress "
        "the file with gzip or remove .gz from its name"
    )


def test_read_gzip_content_plain_name(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(gzip.compress(b"user_id,topic,event_type,timestamp\n"))
    with pytest.raises(InputContractError, match="add .gz to the name"):
        read_events(path)


def test_read_parquet_named_csv(inputs: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes((inputs / "events.parquet").read_bytes())
    with pytest.raises(InputContractError, match="the content is a Parquet file"):
        read_events(path)


def test_read_parquet_missing_topic(inputs: Path) -> None:
    with pytest.raises(InputContractError) as caught:
        read_events(inputs / "missing_topic.parquet")
    assert str(caught.value) == (
        "missing_topic.parquet: missing required column(s) ['topic']; found "
        "columns ['user_id', 'event_type', 'timestamp']; add the column(s), or map "
        "the file's names with a column mapping (--column genre=topic when "
        "scoring, --columns genre=topic when training)"
    )


def test_read_parquet_timestamp_column(inputs: Path) -> None:
    result = read_events(inputs / "events.parquet")
    assert result.timestamp_unit == "timestamp"
    assert result.events["timestamp"].tolist() == [T0, T0 + 500]


def test_read_jsonl_malformed_line(inputs: Path) -> None:
    with pytest.raises(InputContractError) as caught:
        read_events(inputs / "malformed_line.jsonl")
    assert caught.value.row == 3
    assert str(caught.value) == (
        "malformed_line.jsonl: line 3 is not a valid JSON event object: Expecting "
        "',' delimiter at column 75; write one JSON object per line, with the same "
        "type for each key on every line"
    )


def test_read_jsonl_gzip_iso(inputs: Path) -> None:
    result = read_events(inputs / "events.jsonl.gz")
    assert result.timestamp_unit == "iso8601"
    assert result.events["value"].tolist() == [2.0, 1.0]


def test_read_jsonl_type_change(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user_id": "u1", "topic": "a", "event_type": "view", '
        '"timestamp": "2024-06-10T06:13:20Z"}\n'
        '{"user_id": "u2", "topic": "a", "event_type": "view", '
        '"timestamp": 1718000000}\n'
    )
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.jsonl: line 2 is not a valid JSON event object: key 'timestamp' "
        "is a number here (1718000000) but a string before; write one JSON "
        "object per line, with the same type for each key on every line"
    )


def test_read_jsonl_numeric_ids(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user_id": 7, "topic": "a", "event_type": "view", "timestamp": 1718000000}\n'
    )
    events = read_events(path).events
    assert events["user_id"].tolist() == ["7"]


def test_read_stream_gzip_csv(inputs: Path) -> None:
    body = io.BytesIO((inputs / "events.csv.gz").read_bytes())
    result = read_events(body, name="incoming/day one/events.csv.gz")
    assert result.rows == 5
    assert result.source == "incoming/day one/events.csv.gz"


def test_read_stream_parquet(inputs: Path) -> None:
    body = io.BytesIO((inputs / "events.parquet").read_bytes())
    result = read_events(body, name="events.parquet")
    assert result.rows == 2


def test_read_stream_needs_name(inputs: Path) -> None:
    with pytest.raises(TypeError, match="name is required"):
        read_events(io.BytesIO(b"x"))


def test_read_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,genre,kind,ts\n1,jazz,rate,1718000000\n")
    columns = {
        "userId": "user_id",
        "genre": "topic",
        "kind": "event_type",
        "ts": "timestamp",
    }
    events = read_events(path, columns=columns).events
    assert events["topic"].tolist() == ["jazz"]
    assert events["user_id"].tolist() == ["1"]


def test_read_unknown_event_type_kept(inputs: Path) -> None:
    events = read_events(inputs / "unknown_event_type.csv").events
    assert events["event_type"].tolist() == ["view", "teleport", "teleport"]


def test_read_csv_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,topic,event_type,timestamp\nu1,a,view,1718000000\n"
        "u2,a,b,view,1718000000\n"
    )
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert "data row 2 has a different number of fields" in str(caught.value)


def test_read_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputContractError, match="cannot open the file"):
        read_events(tmp_path / "absent.csv")


def test_read_files_fingerprint_input(inputs: Path) -> None:
    result = read_events(inputs / "basic.csv")
    assert result.files == [{"path": str(inputs / "basic.csv"), "rows": 5}]


def test_read_stream_has_no_files(inputs: Path) -> None:
    body = io.BytesIO((inputs / "basic.csv").read_bytes())
    assert read_events(body, name="basic.csv").files == []


def event_lines(count: int) -> str:
    """Return ``count`` distinct CSV event rows, about 30 bytes each."""
    return "".join(f"u{i},t{i % 97},view,{T0 + 7 * i}\n" for i in range(count))


def bytes_in_message(message: str) -> int:
    """Return the byte count of an "after about N bytes" message."""
    return int(re.search(r"after about (\d+) bytes", message).group(1))  # type: ignore[union-attr]


def jsonl_lines(count: int) -> str:
    """Return ``count`` distinct JSON Lines events."""
    return "".join(
        f'{{"user_id": "u{i}", "topic": "a", "event_type": "view", '
        f'"timestamp": {T0 + i}}}\n'
        for i in range(count)
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("events.csv.gz", HEADER + event_lines(100_000)),
        ("events.jsonl.gz", jsonl_lines(100_000)),
    ],
)
def test_read_truncated_gzip(tmp_path: Path, name: str, text: str) -> None:
    compressed = gzip.compress(text.encode())
    path = tmp_path / name
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    message = str(caught.value)
    decompressed = bytes_in_message(message)
    assert 0 < decompressed < len(text)
    assert message == (
        f"{name}: the gzip stream ends early (truncated or incomplete upload) "
        f"after about {decompressed} bytes of data; upload the complete file again"
    )


def test_read_truncated_gzip_stream(tmp_path: Path) -> None:
    text = HEADER + event_lines(1_000)
    compressed = gzip.compress(text.encode())
    body = io.BytesIO(compressed[:-20])
    with pytest.raises(InputContractError) as caught:
        read_events(body, name="incoming/events.csv.gz")
    assert str(caught.value) == (
        "incoming/events.csv.gz: the gzip stream ends early (truncated or "
        "incomplete upload) after about 0 bytes of data; upload the complete "
        "file again"
    )


def test_read_corrupt_gzip(tmp_path: Path) -> None:
    text = HEADER + event_lines(1_000)
    compressed = bytearray(gzip.compress(text.encode()))
    compressed[-8] ^= 0xFF  # the stored CRC-32 of the content
    path = tmp_path / "events.csv.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert str(caught.value) == (
        "events.csv.gz: the gzip stream is corrupt after about 0 bytes of data "
        "(zlib inflate failed: incorrect data check); compress the file again "
        "with gzip and upload it again"
    )


def long_row_csv() -> bytes:
    """Return a CSV whose data row 3 has a 3 MB topic, over the 1 MiB row limit."""
    text = HEADER + event_lines(2) + "u9," + "x" * 3_000_000 + f",view,{T0}\n"
    return (text + event_lines(2)).encode()


def test_read_long_row(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(long_row_csv())
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 3
    assert str(caught.value) == (
        "events.csv: data row 3 is longer than the reader's maximum row size of "
        "1 MiB; expected event rows of a few hundred bytes; look for a missing "
        "line break or an overlong value in that row, and fix or remove it"
    )


def test_read_long_row_stream() -> None:
    body = io.BytesIO(long_row_csv())
    with pytest.raises(InputContractError) as caught:
        read_events(body, name="events.csv")
    assert caught.value.row == 3
    assert str(caught.value) == (
        "events.csv: a data row at or after data row 3 is longer than the "
        "reader's maximum row size of 1 MiB; expected event rows of a few "
        "hundred bytes; look for a missing line break or an overlong value "
        "there, and fix or remove that row"
    )


def test_read_wrong_field_count_huge_field(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + event_lines(2) + "u9,a," + "x" * 200_000 + ",b,view,1\n")
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row is None
    assert str(caught.value) == (
        f"events.csv: a data row has a different number of fields than the "
        f"header: {'u9,a,' + 'x' * 195!r} (CSV parse error: Expected 4 columns, "
        f"got 6: u9,a,{'x' * 91} ...); quote fields that contain commas, or fix "
        f"the row"
    )


def latin1_csv() -> bytes:
    """Return a Latin-1 CSV with user_id 'José' at data row 1001.

    Its unused column ``note`` has 'café' at data row 5, which the reader
    never decodes, so it must not be the row reported.
    """
    notes = ["café" if row == 5 else "ok" for row in range(1, 1_001)]
    rows = event_lines(1_000).splitlines()
    body = "".join(f"{note},{row}\n" for note, row in zip(notes, rows, strict=True))
    text = "note," + HEADER + body
    text += f"ok,José,a,view,{T0}\n"
    return text.encode("latin-1")


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz"])
def test_read_invalid_utf8(tmp_path: Path, name: str) -> None:
    content = latin1_csv()
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 1001
    assert str(caught.value) == (
        f"{name}: column 'user_id' at data row 1001: expected UTF-8 text, found "
        f"b'Jos\\xe9', which is not valid UTF-8; re-export the file as UTF-8"
    )


def test_read_invalid_utf8_stream() -> None:
    body = io.BytesIO(latin1_csv())
    with pytest.raises(InputContractError) as caught:
        read_events(body, name="events.csv")
    assert str(caught.value) == (
        "events.csv: column 'user_id' has bytes that are not valid UTF-8 at or "
        "after data row 1; expected UTF-8 text; re-export the file as UTF-8"
    )


def test_read_jsonl_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"user_id": "u1", "topic": "a", "event_type": "view", '
        b'"timestamp": 1718000000}\n'
        b'{"user_id": "Jos\xe9", "topic": "a", "event_type": "view", '
        b'"timestamp": 1718000000}\n'
    )
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.jsonl: key 'user_id' at data row 2: expected UTF-8 text, found "
        "b'Jos\\xe9', which is not valid UTF-8; re-export the file as UTF-8"
    )


JSON_EVENT = (
    '{"user_id": "u1", "topic": "a", "event_type": "view", "timestamp": 1718000000}'
)


def test_read_jsonl_utf16_without_bom(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(f"{JSON_EVENT}\n{JSON_EVENT}\n".encode("utf-16-be"))
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 1
    assert str(caught.value) == (
        "events.jsonl: line 1 has NUL bytes (it starts "
        "b'\\x00{\\x00\"\\x00u\\x00s\\x00e\\x00r\\x00_\\x00i\\x00d\\x00\"'), as "
        "UTF-16 or UTF-32 text and binary files have; expected UTF-8 text; "
        "re-export the file as UTF-8"
    )


def test_read_jsonl_nul_first_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(f"\x00{JSON_EVENT}\n{JSON_EVENT}\n".encode())
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert str(caught.value) == (
        'events.jsonl: line 1 has NUL bytes (it starts b\'\\x00{"user_id": '
        '"u1", "\'), as UTF-16 or UTF-32 text and binary files have; expected '
        "UTF-8 text; re-export the file as UTF-8"
    )


def test_read_jsonl_nul_later_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(f"{JSON_EVENT}\n\x00{JSON_EVENT}\n".encode())
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.jsonl: line 2 is not a valid JSON event object: Expecting value "
        "at column 1; write one JSON object per line, with the same type for "
        "each key on every line"
    )


def test_read_csv_utf16(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes((HEADER + event_lines(2)).encode("utf-16-le"))
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert str(caught.value) == (
        "events.csv: line 1 has NUL bytes (it starts "
        "b'u\\x00s\\x00e\\x00r\\x00_\\x00i\\x00d\\x00,\\x00t\\x00o\\x00'), as "
        "UTF-16 or UTF-32 text and binary files have; expected UTF-8 text; "
        "re-export the file as UTF-8"
    )


@pytest.mark.parametrize(
    ("topic", "found"),
    [
        ('["a", "b"]', '["a", "b"] (type list<item: string>)'),
        ('{"name": "a"}', '{"name": "a"} (type struct<name: string>)'),
    ],
)
def test_read_jsonl_nested_topic_first_line(
    tmp_path: Path, topic: str, found: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        f'{{"user_id": "u1", "topic": {topic}, "event_type": "view", '
        f'"timestamp": {T0}}}\n'
    )
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 1
    assert str(caught.value) == (
        f"events.jsonl: column 'topic' at data row 1: expected a string, found "
        f"{found}; write one string per row in this column (one row per topic "
        f"for an event with several topics)"
    )


def test_read_parquet_list_column(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "user_id": ["u1", "u2"],
            "topic": [None, ["a", "b"]],
            "event_type": ["view", "view"],
            "timestamp": [T0, T0],
        }
    )
    pq.write_table(table, path)
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.parquet: column 'topic' at data row 2: expected a string, found "
        '["a", "b"] (type list<element: string>); write one string per row in '
        "this column (one row per topic for an event with several topics)"
    )


def test_read_parquet_binary_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "user_id": pa.array([b"u1", b"Jos\xe9"], pa.binary()),
            "topic": ["a", "b"],
            "event_type": ["view", "view"],
            "timestamp": [T0, T0],
        }
    )
    pq.write_table(table, path)
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.parquet: column 'user_id' at data row 2: expected UTF-8 text, "
        "found b'Jos\\xe9', which is not valid UTF-8; write the column as UTF-8 "
        "strings"
    )


def test_read_parquet_binary_utf8_accepted(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "user_id": pa.array([b"u1", "José".encode()], pa.binary()),
            "topic": ["a", "b"],
            "event_type": ["view", "view"],
            "timestamp": [T0, T0],
        }
    )
    pq.write_table(table, path)
    events = read_events(path).events
    assert list(events["user_id"]) == ["u1", "José"]
