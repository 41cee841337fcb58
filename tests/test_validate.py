"""Input-contract tests: timestamps, rejected rows and value parsing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infer.errors import InputContractError
from infer.reader import read_events
from infer.validate import column_mapping, convert_blocks

HEADER = "user_id,topic,event_type,timestamp\n"
T0 = 1_718_000_000


def write(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rejected_rows_counted(fixtures_dir: Path) -> None:
    result = read_events(fixtures_dir / "inputs" / "rejected_rows.csv")
    assert result.rejected == {
        "empty user_id": 1,
        "empty topic": 1,
        "timestamp before 1990": 1,
        "non-finite value": 2,
    }
    assert result.first_rejected_row["empty topic"] == 3
    assert len(result.events) == 1
    assert result.rows == 6


def test_whitespace_user_id_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\n  ,a,view,{T0}\n")
    assert read_events(path).rejected == {"empty user_id": 1}


def test_after_as_of_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\nu2,a,view,{T0 + 90_000}\n")
    result = read_events(path, as_of=T0)
    assert result.rejected == {"timestamp more than a day after as_of": 1}


def test_within_day_after_as_of_kept(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\nu2,a,view,{T0 + 3_600}\n")
    assert read_events(path, as_of=T0).rejected == {}


def test_all_rows_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ",a,view,1718000000\n")
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert str(caught.value) == (
        "events.csv: all 1 rows were rejected (empty user_id: 1 (first at data "
        "row 1)); fix the rows or check the column mapping and the as_of time"
    )


def test_non_finite_timestamp_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\nu2,a,view,nan\n")
    assert read_events(path).rejected == {"non-finite timestamp": 1}


def test_mixed_seconds_milliseconds(tmp_path: Path) -> None:
    rows = f"u1,a,view,{T0}\nu2,a,view,{T0 + 1}\nu3,a,view,{T0 * 1000}\n"
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 3
    assert str(caught.value) == (
        "events.csv: column 'timestamp' mixes epoch seconds (2 rows) and epoch "
        "milliseconds (1 rows); data row 3 has 1718000000000, which looks like "
        "milliseconds; write epoch seconds, epoch milliseconds or ISO-8601 "
        "strings such as 2024-06-10T08:30:00Z, one kind for the whole column"
    )


def test_microseconds_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0 * 1_000_000}\n")
    with pytest.raises(InputContractError, match="too large for epoch seconds"):
        read_events(path)


def test_unparseable_timestamp_row(tmp_path: Path) -> None:
    rows = "u1,a,view,2024-06-10T06:13:20Z\nu2,a,view,yesterday\n"
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.csv: column 'timestamp' at data row 2: expected epoch seconds, "
        "epoch milliseconds or an ISO-8601 time, found 'yesterday'; write epoch "
        "seconds, epoch milliseconds or ISO-8601 strings such as "
        "2024-06-10T08:30:00Z, one kind for the whole column"
    )


def test_epoch_number_among_iso(tmp_path: Path) -> None:
    rows = f"u1,a,view,2024-06-10T06:13:20Z\nu2,a,view,{T0}\n"
    rows += "u3,a,view,2024-06-10T06:13:20Z\n"
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.csv: column 'timestamp' mixes epoch numbers (1 rows) and "
        "ISO-8601 times (2 rows) in data rows 1 to 3; data row 2 has "
        "'1718000000', which is an epoch number; write epoch seconds, epoch "
        "milliseconds or ISO-8601 strings such as 2024-06-10T08:30:00Z, one "
        "kind for the whole column"
    )


def test_empty_timestamp_row(tmp_path: Path) -> None:
    rows = f"u1,a,view,{T0}\nu2,a,view,\n"
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 2


def test_bad_value_row(tmp_path: Path) -> None:
    text = "user_id,topic,event_type,timestamp,value\n" + f"u1,a,view,{T0},high\n"
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, text))
    assert str(caught.value) == (
        "events.csv: column 'value' at data row 1: expected a number, found "
        "'high'; write plain numbers such as 4.5, or leave the field empty for "
        "the default 1.0"
    )


def test_empty_value_defaults(tmp_path: Path) -> None:
    text = "user_id,topic,event_type,timestamp,value\n" + f"u1,a,view,{T0},\n"
    assert read_events(write(tmp_path, text)).events["value"].tolist() == [1.0]


def test_fractional_epoch_floored(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}.75\n")
    assert read_events(path).events["timestamp"].tolist() == [T0]


def test_iso_fraction_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "u1,a,view,2024-06-10T07:13:20.9+01:00\n")
    assert read_events(path).events["timestamp"].tolist() == [T0]


def test_iso_date_only_utc(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "u1,a,view,2024-06-10\nu1,a,view,2024-06-10 06\n")
    events = read_events(path).events
    assert events["timestamp"].tolist() == [1_717_977_600, 1_717_999_200]


def test_iso_negative_offset(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "u1,a,view,2024-06-10T01:13:20-05\n")
    assert read_events(path).events["timestamp"].tolist() == [T0]


def test_invalid_mapping_key(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\n")
    with pytest.raises(InputContractError, match="invalid column mapping topic=genre"):
        read_events(path, columns={"topic": "genre"})


def test_mapping_target_twice(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\n")
    with pytest.raises(InputContractError, match="'topic' is mapped twice"):
        read_events(path, columns={"genre": "topic", "tag": "topic"})


def test_mapping_hint_in_missing(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{T0}\n")
    with pytest.raises(
        InputContractError, match=r"\(column mapping \{'genre': 'topic'\}\)"
    ):
        read_events(path, columns={"genre": "topic"})


def many_rows(count: int, timestamp: int, user: str = "u1") -> str:
    """Return ``count`` CSV rows, more than a reader block when count is large."""
    return f"{user},a,view,{timestamp}\n" * count


def test_mixed_units_across_blocks(tmp_path: Path) -> None:
    # 60,000 rows of about 25 bytes span more than one 1 MiB block.
    rows = many_rows(60_000, T0) + many_rows(2, T0 * 1000, user="u2")
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 60_001


def test_milliseconds_across_blocks(tmp_path: Path) -> None:
    rows = many_rows(60_000, T0 * 1000 + 999) + many_rows(1, T0 * 1000, user="u2")
    events = read_events(write(tmp_path, HEADER + rows)).events
    assert events["timestamp"].tolist() == [T0] * 60_001


def test_rejected_rows_across_blocks(tmp_path: Path) -> None:
    rows = many_rows(60_000, T0) + many_rows(1, 100, user="u2")
    result = read_events(write(tmp_path, HEADER + rows))
    assert result.first_rejected_row == {"timestamp before 1990": 60_001}


def test_rejected_user_dropped_from_categories(tmp_path: Path) -> None:
    rows = many_rows(60_000, T0) + many_rows(1, 100, user="u2")
    events = read_events(write(tmp_path, HEADER + rows)).events
    assert list(events["user_id"].cat.categories) == ["u1"]


def epoch_rows(count: int, bad_row: int, bad_value: str) -> str:
    """Return ``count`` rows of epoch seconds with ``bad_value`` at ``bad_row``."""
    return "".join(
        f"u{row},a,view,{bad_value if row == bad_row else T0 + 60 * row}\n"
        for row in range(1, count + 1)
    )


def test_bad_timestamp_among_epochs(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + epoch_rows(1_000, 501, "abc"))
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 501
    assert str(caught.value) == (
        "events.csv: column 'timestamp' at data row 501: expected epoch seconds, "
        "epoch milliseconds or an ISO-8601 time, found 'abc'; write epoch "
        "seconds, epoch milliseconds or ISO-8601 strings such as "
        "2024-06-10T08:30:00Z, one kind for the whole column"
    )


def test_iso_among_epochs(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + epoch_rows(1_000, 501, "2024-06-10T06:13:20Z"))
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 501
    assert str(caught.value) == (
        "events.csv: column 'timestamp' mixes epoch numbers (999 rows) and "
        "ISO-8601 times (1 rows) in data rows 1 to 1000; data row 501 has "
        "'2024-06-10T06:13:20Z', which is an ISO-8601 time; write epoch "
        "seconds, epoch milliseconds or ISO-8601 strings such as "
        "2024-06-10T08:30:00Z, one kind for the whole column"
    )


def test_repeated_header_line(tmp_path: Path) -> None:
    rows = epoch_rows(500, 0, "") + HEADER + epoch_rows(499, 0, "")
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 501
    assert str(caught.value) == (
        "events.csv: column 'timestamp' at data row 501: expected epoch seconds, "
        "epoch milliseconds or an ISO-8601 time, found 'timestamp', the "
        "column's own name, so the header line is repeated there; remove the "
        "repeated line (when joining files, keep only the first file's header)"
    )


def test_kind_change_across_blocks(tmp_path: Path) -> None:
    rows = many_rows(60_000, T0) + "u2,a,view,2024-06-10T06:13:20Z\n" * 2
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 60_001
    assert str(caught.value) == (
        "events.csv: column 'timestamp' has epoch numbers up to data row 60000, "
        "but data row 60001 has '2024-06-10T06:13:20Z', which is an ISO-8601 "
        "time; write epoch seconds, epoch milliseconds or ISO-8601 strings such "
        "as 2024-06-10T08:30:00Z, one kind for the whole column"
    )


def test_bad_timestamp_across_blocks(tmp_path: Path) -> None:
    rows = many_rows(60_000, T0) + "u2,a,view,abc\n"
    with pytest.raises(InputContractError) as caught:
        read_events(write(tmp_path, HEADER + rows))
    assert caught.value.row == 60_001
    assert "data row 60001: expected epoch seconds" in str(caught.value)


def test_kind_change_between_blocks() -> None:
    def block(stamps: list[str]) -> pa.RecordBatch:
        columns = {"user_id": ["u1"] * 2, "topic": ["a"] * 2, "event_type": ["v"] * 2}
        return pa.RecordBatch.from_pydict({**columns, "timestamp": stamps})

    blocks = [
        (block([str(T0), str(T0 + 1)]), 1),
        (block(["2024-06-10T06:13:20Z", "2024-06-10T06:13:21Z"]), 3),
    ]
    with pytest.raises(InputContractError) as caught:
        convert_blocks(blocks, "events.csv", column_mapping(None, "events.csv"))
    assert caught.value.row == 3
    assert str(caught.value) == (
        "events.csv: column 'timestamp' has epoch numbers up to data row 2, but "
        "data row 3 has '2024-06-10T06:13:20Z', which is an ISO-8601 time; write "
        "epoch seconds, epoch milliseconds or ISO-8601 strings such as "
        "2024-06-10T08:30:00Z, one kind for the whole column"
    )


@pytest.mark.parametrize(
    "text",
    [
        "2024-06-10T06:13:20.1234567Z",
        "2024-06-10T06:13:20.123456789Z",
        "2024-06-10T08:13:20.999999999+02:00",
        "2024-06-10T06:13:20z",
        "2024-06-10t06:13:20Z",
        "20240610T061320Z",
        "20240610T061320",
        "20240610T081320+0200",
        "20240610T061320.5z",
    ],
)
def test_iso_forms_pyarrow_lacks(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, HEADER + f"u1,a,view,{text}\n")
    result = read_events(path)
    assert result.timestamp_unit == "iso8601"
    assert result.events["timestamp"].tolist() == [T0]


def test_iso_rewrite_keeps_other_rows(tmp_path: Path) -> None:
    rows = "u1,a,view,2024-06-10T06:13:20Z\nu1,a,view,20240610T061320.000000001Z\n"
    path = write(tmp_path, HEADER + rows)
    assert read_events(path).events["timestamp"].tolist() == [T0, T0]


def test_iso_rewrite_bad_row_named(tmp_path: Path) -> None:
    rows = "u1,a,view,20240610T061320Z\nu1,a,view,20240610T0613200Z\n"
    path = write(tmp_path, HEADER + rows)
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert caught.value.row == 2
    assert str(caught.value) == (
        "events.csv: column 'timestamp' at data row 2: expected epoch seconds, "
        "epoch milliseconds or an ISO-8601 time, found '20240610T0613200Z'; write "
        "epoch seconds, epoch milliseconds or ISO-8601 strings such as "
        "2024-06-10T08:30:00Z, one kind for the whole column"
    )


def test_repeated_column_rejected(tmp_path: Path) -> None:
    text = "user_id,topic,user_id,event_type,timestamp\n" + f"u1,a,u2,view,{T0}\n"
    path = write(tmp_path, text)
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert str(caught.value) == (
        "events.csv: column 'user_id' appears 2 times, at column positions 1, 3; "
        "expected each column once; remove or rename the repeated column"
    )


def test_repeated_mapped_column_rejected(tmp_path: Path) -> None:
    text = "userId,topic,event_type,timestamp,userId\n" + f"u1,a,view,{T0},u2\n"
    path = write(tmp_path, text)
    with pytest.raises(InputContractError) as caught:
        read_events(path, columns={"userId": "user_id"})
    assert str(caught.value) == (
        "events.csv: column 'userId' appears 2 times, at column positions 1, 5; "
        "expected each column once; remove or rename the repeated column"
    )


def test_repeated_parquet_column_rejected(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = pa.Table.from_arrays(
        [pa.array(["u1"]), pa.array(["a"]), pa.array(["view"]), pa.array([T0])] * 2,
        names=["user_id", "topic", "event_type", "timestamp"] * 2,
    )
    pq.write_table(table, path)
    with pytest.raises(InputContractError) as caught:
        read_events(path)
    assert str(caught.value) == (
        "events.parquet: column 'user_id' appears 2 times, at column positions "
        "1, 5; expected each column once; remove or rename the repeated column"
    )


def test_repeated_other_column_accepted(tmp_path: Path) -> None:
    text = "note,user_id,topic,event_type,timestamp,note\n" + f"x,u1,a,view,{T0},y\n"
    path = write(tmp_path, text)
    assert read_events(path).events["user_id"].tolist() == ["u1"]
