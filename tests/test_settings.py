"""Unit tests of the cloud function's settings (environment variables)."""

from __future__ import annotations

import pytest

from infer import settings as s
from infer.settings import Settings, SettingsError


def test_defaults_without_environment() -> None:
    config = Settings.from_env({})
    assert config.input_prefix == "incoming/"
    assert config.output_prefix == "scores/"
    assert config.error_prefix == "errors/"
    assert config.output_format == "parquet"
    assert config.top_k is None
    assert config.model_uri == str(s.PACKAGED_MODEL_DIR)
    assert config.max_object_bytes == 2 * 1024**3
    assert config.max_decompression_ratio == 100.0
    assert config.ort_threads == s.available_cpus()


def test_every_variable_read() -> None:
    env = {
        s.INPUT_PREFIX: "in/",
        s.OUTPUT_PREFIX: "out/",
        s.ERROR_PREFIX: "bad/",
        s.OUTPUT_FORMAT: "CSV",
        s.TOP_K: "3",
        s.MODEL_URI: "s3://models/interest/v1/",
        s.MAX_OBJECT_BYTES: "1000",
        s.MAX_DECOMPRESSION_RATIO: "12.5",
        s.ORT_THREADS: "1",
    }
    config = Settings.from_env(env)
    assert config == Settings(
        input_prefix="in/",
        output_prefix="out/",
        error_prefix="bad/",
        output_format="csv",
        top_k=3,
        model_uri="s3://models/interest/v1/",
        max_object_bytes=1000,
        max_decompression_ratio=12.5,
        ort_threads=1,
    )


def test_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(s.OUTPUT_FORMAT, "jsonl")
    assert Settings.from_env().output_format == "jsonl"
    monkeypatch.setenv(s.OUTPUT_FORMAT, "csv")
    assert Settings.from_env().output_format == "csv"


def test_empty_variable_takes_default() -> None:
    assert Settings.from_env({s.TOP_K: "", s.INPUT_PREFIX: "  "}).top_k is None


def test_output_prefix_inside_input_rejected() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({s.INPUT_PREFIX: "data/", s.OUTPUT_PREFIX: "data/scores/"})
    assert str(caught.value) == (
        "OUTPUT_PREFIX='data/scores/' overlaps INPUT_PREFIX='data/', so the "
        "function's own writes would trigger it again; choose prefixes where "
        "neither starts with the other, such as 'incoming/' and 'scores/'"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (s.OUTPUT_PREFIX, "incoming/"),
        (s.ERROR_PREFIX, "incoming/errors/"),
    ],
)
def test_overlapping_prefix_rejected(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match="overlaps INPUT_PREFIX"):
        Settings.from_env({name: value})


def test_input_prefix_inside_output_rejected() -> None:
    with pytest.raises(SettingsError, match="overlaps INPUT_PREFIX"):
        Settings.from_env({s.INPUT_PREFIX: "scores/new/"})


def test_prefix_without_slash_rejected() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({s.INPUT_PREFIX: "incoming"})
    assert str(caught.value) == (
        "INPUT_PREFIX='incoming' is invalid; a prefix must be a folder such as "
        "'incoming/': it must end with '/' and must not start with '/'"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (s.OUTPUT_FORMAT, "xlsx", "OUTPUT_FORMAT='xlsx' is not supported; set it "
         "to one of parquet, csv, jsonl"),
        (s.TOP_K, "0", "TOP_K=0 is invalid; set a positive integer, or unset it "
         "to keep every topic"),
        (s.TOP_K, "three", "TOP_K='three' is not an integer; set a whole number "
         "such as 8"),
        (s.MAX_OBJECT_BYTES, "0", "MAX_OBJECT_BYTES=0 is invalid; set a positive "
         "number of bytes"),
        (s.MAX_DECOMPRESSION_RATIO, "0.5", "MAX_DECOMPRESSION_RATIO=0.5 is "
         "invalid; set a number of at least 1"),
        (s.MAX_DECOMPRESSION_RATIO, "lots", "MAX_DECOMPRESSION_RATIO='lots' is "
         "not a number; set a number such as 100"),
        (s.ORT_THREADS, "-1", "ORT_THREADS=-1 is invalid; set a positive integer, "
         "or unset it to use every available CPU"),
    ],
)
def test_invalid_value_message(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == message


def test_output_key_pure_function() -> None:
    config = Settings(output_format="csv")
    key = "incoming/week 01/events.csv"
    assert config.output_key(key) == "scores/week 01/events.csv.csv"
    assert config.output_key(key) == config.output_key(key)


def test_error_key() -> None:
    assert Settings().error_key("incoming/a/b.jsonl.gz") == "errors/a/b.jsonl.gz.json"


@pytest.mark.parametrize(
    "key", ["scores/x.csv", "incoming", "incoming/", "other/incoming/x.csv"]
)
def test_relative_key_outside_prefix(key: str) -> None:
    assert Settings().relative_key(key) is None


def test_every_name_listed() -> None:
    names = {value for name, value in vars(s).items()
             if name.isupper() and isinstance(value, str) and value == name}
    assert names == set(s.ENVIRONMENT_VARIABLES)


def test_threads_above_cpus_rejected() -> None:
    cpus = s.available_cpus()
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({s.ORT_THREADS: "100000"})
    assert str(caught.value) == (
        f"ORT_THREADS=100000 is above the {cpus} CPUs available to this "
        f"process; more threads than CPUs only add memory and contention; set "
        f"at most {cpus}, or unset it to use every available CPU"
    )


def test_threads_equal_cpus_accepted() -> None:
    cpus = s.available_cpus()
    assert Settings.from_env({s.ORT_THREADS: str(cpus)}).ort_threads == cpus
