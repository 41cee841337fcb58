"""Settings of the cloud function, read from environment variables.

Every environment variable the function reads is named here, so the
deployment template and the docs have one place to look. ``Settings`` is
read when the handler runs (``Settings.from_env()``), never at import, so a
changed environment needs no module reload.

- ``INPUT_PREFIX`` (``incoming/``): only keys under it are scored.
- ``OUTPUT_PREFIX`` (``scores/``): where scores go; must not overlap the
  input prefix.
- ``ERROR_PREFIX`` (``errors/``): where error reports go; must not overlap
  the input prefix.
- ``OUTPUT_FORMAT`` (``parquet``): ``parquet``, ``csv`` or ``jsonl``.
- ``TOP_K`` (unset): keep only the k strongest topics per user.
- ``MODEL_URI`` (the ``model/`` folder beside the ``infer`` package): a
  bundle folder, or ``s3://bucket/prefix/`` of a bundle.
- ``MAX_OBJECT_BYTES`` (2 GiB): larger objects are rejected with an error
  report.
- ``MAX_DECOMPRESSION_RATIO`` (100): a gzip object whose decompressed size
  passes this many times its stored size is rejected with an error report.
- ``ORT_THREADS`` (the CPUs available to the process): onnxruntime intra-op
  threads, from 1 to the number of CPUs available to the process. More
  threads than CPUs only cost memory (each thread has its own stack) and
  contention, so a larger value is rejected.
- ``AWS_ENDPOINT_URL_S3`` (unset): boto3's own override of the S3 endpoint,
  used for local S3 servers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infer.errors import InterestDecayError

INPUT_PREFIX = "INPUT_PREFIX"
OUTPUT_PREFIX = "OUTPUT_PREFIX"
ERROR_PREFIX = "ERROR_PREFIX"
OUTPUT_FORMAT = "OUTPUT_FORMAT"
TOP_K = "TOP_K"
MODEL_URI = "MODEL_URI"
MAX_OBJECT_BYTES = "MAX_OBJECT_BYTES"
MAX_DECOMPRESSION_RATIO = "MAX_DECOMPRESSION_RATIO"
ORT_THREADS = "ORT_THREADS"
# boto3 reads this one itself; it is listed so that every variable the
# function depends on is named in this module.
AWS_ENDPOINT_URL_S3 = "AWS_ENDPOINT_URL_S3"

ENVIRONMENT_VARIABLES: tuple[str, ...] = (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    ERROR_PREFIX,
    OUTPUT_FORMAT,
    TOP_K,
    MODEL_URI,
    MAX_OBJECT_BYTES,
    MAX_DECOMPRESSION_RATIO,
    ORT_THREADS,
    AWS_ENDPOINT_URL_S3,
)

OUTPUT_FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")

# The deployment package puts the model bundle in a folder named ``model``
# next to the ``infer`` package (the Lambda task root).
PACKAGED_MODEL_DIRNAME = "model"
PACKAGED_MODEL_DIR = Path(__file__).resolve().parent.parent / PACKAGED_MODEL_DIRNAME

DEFAULT_MAX_OBJECT_BYTES = 2 * 1024**3
# CSV and JSON Lines behaviour files usually compress 5 to 20 times with
# gzip; a ratio of 100 leaves room for repetitive files and still stops a
# gzip bomb long before it fills memory or /tmp.
DEFAULT_MAX_DECOMPRESSION_RATIO = 100.0


class SettingsError(InterestDecayError):
    """An environment variable of the cloud function has an invalid value."""


@dataclass(frozen=True)
class Settings:
    """Settings of the cloud function; see the module docstring for each one.

    Raises
    ------
    SettingsError
        If a value is invalid, or the output or error prefix overlaps the
        input prefix (the function's own writes would trigger it again).
    """

    input_prefix: str = "incoming/"
    output_prefix: str = "scores/"
    error_prefix: str = "errors/"
    output_format: str = "parquet"
    top_k: int | None = None
    model_uri: str = str(PACKAGED_MODEL_DIR)
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    max_decompression_ratio: float = DEFAULT_MAX_DECOMPRESSION_RATIO
    ort_threads: int = 1

    def __post_init__(self) -> None:
        _check_prefix(INPUT_PREFIX, self.input_prefix)
        _check_prefix(OUTPUT_PREFIX, self.output_prefix)
        _check_prefix(ERROR_PREFIX, self.error_prefix)
        _check_no_overlap(OUTPUT_PREFIX, self.output_prefix, self.input_prefix)
        _check_no_overlap(ERROR_PREFIX, self.error_prefix, self.input_prefix)
        if self.output_format not in OUTPUT_FORMATS:
            raise SettingsError(
                f"{OUTPUT_FORMAT}={self.output_format!r} is not supported; "
                f"set it to one of {', '.join(OUTPUT_FORMATS)}"
            )
        if self.top_k is not None and self.top_k < 1:
            raise SettingsError(
                f"{TOP_K}={self.top_k} is invalid; set a positive integer, "
                f"or unset it to keep every topic"
            )
        if not self.model_uri:
            raise SettingsError(
                f"{MODEL_URI} is empty; set a bundle folder or s3://bucket/prefix/, "
                f"or unset it to use the bundle in the package"
            )
        if self.max_object_bytes < 1:
            raise SettingsError(
                f"{MAX_OBJECT_BYTES}={self.max_object_bytes} is invalid; "
                f"set a positive number of bytes"
            )
        if not self.max_decompression_ratio >= 1:
            raise SettingsError(
                f"{MAX_DECOMPRESSION_RATIO}={self.max_decompression_ratio} is "
                f"invalid; set a number of at least 1"
            )
        if self.ort_threads < 1:
            raise SettingsError(
                f"{ORT_THREADS}={self.ort_threads} is invalid; set a positive "
                f"integer, or unset it to use every available CPU"
            )
        cpus = available_cpus()
        if self.ort_threads > cpus:
            raise SettingsError(
                f"{ORT_THREADS}={self.ort_threads} is above the {cpus} CPUs "
                f"available to this process; more threads than CPUs only add "
                f"memory and contention; set at most {cpus}, or unset it to use "
                f"every available CPU"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from environment variables.

        Parameters
        ----------
        environ:
            The variables to read; ``os.environ`` when omitted. An unset or
            empty variable takes its default.

        Returns
        -------
        Settings
            The validated settings.

        Raises
        ------
        SettingsError
            If a variable is not a valid value for its setting, or the
            prefixes overlap.
        """
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        defaults = cls()
        top_k = _parse_int(TOP_K, text(TOP_K))
        threads = _parse_int(ORT_THREADS, text(ORT_THREADS))
        max_bytes = _parse_int(MAX_OBJECT_BYTES, text(MAX_OBJECT_BYTES))
        ratio = _parse_float(MAX_DECOMPRESSION_RATIO, text(MAX_DECOMPRESSION_RATIO))
        return cls(
            input_prefix=text(INPUT_PREFIX) or defaults.input_prefix,
            output_prefix=text(OUTPUT_PREFIX) or defaults.output_prefix,
            error_prefix=text(ERROR_PREFIX) or defaults.error_prefix,
            output_format=(text(OUTPUT_FORMAT) or defaults.output_format).lower(),
            top_k=top_k,
            model_uri=text(MODEL_URI) or defaults.model_uri,
            max_object_bytes=(
                defaults.max_object_bytes if max_bytes is None else max_bytes
            ),
            max_decompression_ratio=(
                defaults.max_decompression_ratio if ratio is None else ratio
            ),
            ort_threads=available_cpus() if threads is None else threads,
        )

    def relative_key(self, key: str) -> str | None:
        """Return ``key`` without the input prefix, or None if it is outside it."""
        if not key.startswith(self.input_prefix) or key == self.input_prefix:
            return None
        return key[len(self.input_prefix) :]

    def output_key(self, key: str) -> str:
        """Return the scores key of an input key: a pure function of the key.

        Raises
        ------
        ValueError
            If ``key`` is outside the input prefix.
        """
        return f"{self.output_prefix}{self._require_relative(key)}.{self.output_format}"

    def error_key(self, key: str) -> str:
        """Return the error-report key of an input key.

        Raises
        ------
        ValueError
            If ``key`` is outside the input prefix.
        """
        return f"{self.error_prefix}{self._require_relative(key)}.json"

    def _require_relative(self, key: str) -> str:
        relative = self.relative_key(key)
        if relative is None:
            raise ValueError(
                f"key {key!r} is outside the input prefix {self.input_prefix!r}"
            )
        return relative


def available_cpus() -> int:
    """Return the number of CPUs this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # sched_getaffinity exists only on some platforms
        return max(1, os.cpu_count() or 1)


def _check_prefix(name: str, prefix: str) -> None:
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise SettingsError(
            f"{name}={prefix!r} is invalid; a prefix must be a folder such as "
            f"'incoming/': it must end with '/' and must not start with '/'"
        )


def _check_no_overlap(name: str, prefix: str, input_prefix: str) -> None:
    if prefix.startswith(input_prefix) or input_prefix.startswith(prefix):
        raise SettingsError(
            f"{name}={prefix!r} overlaps {INPUT_PREFIX}={input_prefix!r}, so the "
            f"function's own writes would trigger it again; choose prefixes "
            f"where neither starts with the other, such as 'incoming/' and "
            f"'scores/'"
        )


def _parse_int(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as error:
        raise SettingsError(
            f"{name}={value!r} is not an integer; set a whole number such as 8"
        ) from error


def _parse_float(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError as error:
        raise SettingsError(
            f"{name}={value!r} is not a number; set a number such as 100"
        ) from error
