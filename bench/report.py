"""Check the targets and write BENCHMARKS.md from the results.

Every table cell of a measured figure is ``median (min–max)`` over the
repeats; ratios are taken within one repeat and then summarised the same
way. The hand-written analysis in ``bench/notes.md`` is appended as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import MIB

NOTES = Path(__file__).resolve().parent / "notes.md"
TARGET_SIZE = 10_000_000
# Targets of the scoring stage, set for a 2-core machine. Memory is in
# decimal gigabytes. The package limit is in MiB, because AWS counts
# Lambda's 250 MB limit in MiB (262,144,000 bytes).
MIN_EVENTS_PER_SECOND = 2_000_000
MAX_PEAK_RSS_BYTES = 2_000_000_000
MIN_RATIO_KERAS_DEFAULT = 100.0
MIN_RATIO_KERAS_8192 = 3.0
MAX_COLD_START_SECONDS = 0.8
MIN_COLD_START_RATIO = 5.0
MAX_UNZIPPED_BYTES = 200 * MIB


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare the medians with the targets; one entry per target."""
    sections = results.get("sections", {})
    checks: list[dict[str, Any]] = []
    local = sections.get("throughput", {}).get("local", {})
    if local:
        size = str(TARGET_SIZE) if str(TARGET_SIZE) in local else max(local, key=int)
        csv = local[size]["csv"]
        where = f"{int(size):,}-event CSV"
        checks.append(
            _at_least(
                f"end-to-end scoring on the {where}",
                "events/s",
                csv["events_per_second"]["median"],
                MIN_EVENTS_PER_SECOND,
            )
        )
        checks.append(
            _at_most(
                f"peak memory on the {where}",
                "bytes",
                csv["peak_rss_bytes"]["median"],
                MAX_PEAK_RSS_BYTES,
            )
        )
    ratios = sections.get("inference", {}).get("ratio_to_onnxruntime", {})
    if ratios:
        checks.append(
            _at_least(
                "onnxruntime against Keras default predict",
                "x",
                ratios["keras_predict_default"]["median"],
                MIN_RATIO_KERAS_DEFAULT,
            )
        )
        checks.append(
            _at_least(
                "onnxruntime against Keras predict, batch 8192",
                "x",
                ratios["keras_predict_8192"]["median"],
                MIN_RATIO_KERAS_8192,
            )
        )
    cold = sections.get("coldstart", {})
    if cold:
        checks.append(
            _at_most(
                "cold start, handler import and bundle load",
                "s",
                cold["onnxruntime"]["process_seconds"]["median"],
                MAX_COLD_START_SECONDS,
            )
        )
        checks.append(
            _at_least(
                "cold start against TensorFlow and model.keras",
                "x",
                cold["ratio_tensorflow_to_onnxruntime"]["median"],
                MIN_COLD_START_RATIO,
            )
        )
    package = sections.get("size", {}).get("zip")
    if package:
        checks.append(
            _at_most(
                "unzipped Lambda zip",
                "bytes",
                package["unzipped_bytes"]["median"],
                MAX_UNZIPPED_BYTES,
            )
        )
    return checks


def _at_least(name: str, unit: str, measured: float, target: float) -> dict[str, Any]:
    met = measured >= target
    return {
        "name": name,
        "unit": unit,
        "measured": measured,
        "target": target,
        "kind": ">=",
        "met": met,
        # How far below the target a miss is, as a share of the target.
        "miss_share": 0.0 if met else 1.0 - measured / target,
    }


def _at_most(name: str, unit: str, measured: float, target: float) -> dict[str, Any]:
    met = measured <= target
    return {
        "name": name,
        "unit": unit,
        "measured": measured,
        "target": target,
        "kind": "<=",
        "met": met,
        "miss_share": 0.0 if met else measured / target - 1.0,
    }


def target_lines(checks: Iterable[dict[str, Any]]) -> Iterable[str]:
    """Yield one line per target: met or missed, measured against target."""
    for check in checks:
        verdict = "met" if check["met"] else f"MISSED by {check['miss_share']:.0%}"
        yield (
            f"{check['name']}: {_value(check['measured'], check['unit'])} "
            f"(target {check['kind']} {_value(check['target'], check['unit'])}): "
            f"{verdict}"
        )


def _value(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / MIB:,.0f} MiB"
    if unit == "events/s":
        return f"{value / 1e6:.2f} M events/s"
    if unit == "x":
        return f"{value:,.1f}x"
    return f"{value:.2f} s"


def _spread(figure: dict[str, Any], scale: float = 1.0, digits: int = 2) -> str:
    """Return ``median (min–max)`` of a summarised figure divided by ``scale``."""
    low, mid, high = (figure[key] / scale for key in ("min", "median", "max"))
    if figure.get("n", 1) == 1:
        return f"{mid:,.{digits}f} (n=1)"
    return f"{mid:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def render(results: dict[str, Any]) -> str:
    """Return BENCHMARKS.md for ``results``."""
    sections = results.get("sections", {})
    parts = [_header(results), _targets_table(results.get("targets", []))]
    if "throughput" in sections:
        parts.append(_throughput(sections["throughput"], results.get("data", {})))
    if "inference" in sections:
        parts.append(_inference(sections["inference"]))
    if "coldstart" in sections:
        parts.append(_coldstart(sections["coldstart"]))
    if "size" in sections:
        parts.append(_size(sections["size"]))
    if "training" in sections:
        parts.append(_training(sections["training"]))
    if NOTES.is_file() and not results.get("settings", {}).get("quick"):
        parts.append(NOTES.read_text(encoding="utf-8").strip())
    return "\n\n".join(part.strip() for part in parts) + "\n"


def _header(results: dict[str, Any]) -> str:
    info = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    settings = results["settings"]
    quick = (
        "\n\n**Quick run (`--quick`): tiny files and one repeat; a smoke test, "
        "not a measurement.**"
        if settings.get("quick")
        else ""
    )
    load = ", ".join(f"{value:.2f}" for value in info["load_average"])
    code = results.get("code", {})
    changed = code.get("uncommitted_infer_files") or []
    dirty = f", with uncommitted changes to {', '.join(changed)}" if changed else ""
    return f"""# Benchmarks

Generated by `{results["command"]}` (`make bench` runs `python -m bench`);
raw figures in `bench/results.json`.{quick}

- date: {results["started_at"]} to {results.get("finished_at", "?")} (UTC),
  {results.get("duration_seconds", 0) / 60:.1f} minutes
- machine: {info["cpu_count"]} CPUs ({info["cpus_available"]} available),
  {info["cpu_model"]}, {info["memory_bytes"] / 2**30:.0f} GiB memory; shared
  with other jobs, load average {load} at the start
- software: Python {info["python"]}, {versions}
- code: commit `{code.get("commit")}`{dirty}
- model bundle: `{results.get("model", {}).get("version")}`
- repeats: {settings["repeats"]} per figure, 2 fewer (at least 1) for files
  of 5 M events or more; each cell is the median, with min–max in brackets"""


def _targets_table(checks: list[dict[str, Any]]) -> str:
    lines = [
        "## Targets",
        "",
        "| target | measured (median) | goal | verdict |",
        "| --- | ---: | ---: | --- |",
    ]
    for check in checks:
        verdict = "met" if check["met"] else f"**missed by {check['miss_share']:.0%}**"
        lines.append(
            f"| {check['name']} | {_value(check['measured'], check['unit'])} | "
            f"{check['kind']} {_value(check['target'], check['unit'])} | {verdict} |"
        )
    return "\n".join(lines)


def _throughput(section: dict[str, Any], described: dict[str, Any]) -> str:
    lines = [
        "## 1. End-to-end scoring throughput",
        "",
        "Each run is a fresh process that loads the bundle, then calls "
        "`infer.scorer.score_file` (read, features, onnxruntime, rank, write "
        "Parquet), the code path of `python -m infer score` and of the handler. "
        "Events per second count that call only; peak RSS is the whole "
        "process's (kernel accounting of the child), imports and bundle "
        "included. The files come from `train.simulate` with its default "
        "settings and more users (no tiling).",
        "",
        "| events | format | file MiB | candidates | events/s (M) | seconds | "
        "peak RSS MiB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, formats in section["local"].items():
        sizes = described.get(size, {}).get("bytes", {})
        for fmt, figure in formats.items():
            lines.append(
                f"| {figure['rows']:,} | {fmt} | {sizes.get(fmt, 0) / MIB:,.0f} | "
                f"{figure['candidates']:,} | "
                f"{_spread(figure['events_per_second'], 1e6)} | "
                f"{_spread(figure['seconds'])} | "
                f"{_spread(figure['peak_rss_bytes'], MIB, 0)} |"
            )
    if section.get("s3"):
        lines += [
            "",
            "Through S3: `infer.handler.lambda_handler` on a put event, against "
            "moto's S3 server on 127.0.0.1 (bundle loaded before the clock "
            "starts; the object streams over loopback HTTP from a Python "
            "server, so this is not a real region's network).",
            "",
            "| events | format | events/s (M) | seconds | peak RSS MiB |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        for figure in section["s3"].values():
            lines.append(
                f"| {figure['rows']:,} | {figure['format']} via S3 | "
                f"{_spread(figure['events_per_second'], 1e6)} | "
                f"{_spread(figure['seconds'])} | "
                f"{_spread(figure['peak_rss_bytes'], MIB, 0)} |"
            )
    lines += [
        "",
        "CSV parsing floor: `pyarrow.csv.read_csv` of the same CSV alone, in a "
        "fresh process, with pyarrow's type inference, and with the reader's "
        "column types (dictionary-encoded ids, text timestamp and value); no "
        "checks, no pandas.",
        "",
        "| events | column types | events/s (M) | seconds | peak RSS MiB |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    floors = {
        "inferred": section["csv_floor"],
        "as the reader": section.get("csv_floor_reader_types", {}),
    }
    for kind, floor in floors.items():
        for figure in floor.values():
            lines.append(
                f"| {figure['rows']:,} | {kind} | "
                f"{_spread(figure['events_per_second'], 1e6)} | "
                f"{_spread(figure['seconds'])} | "
                f"{_spread(figure['peak_rss_bytes'], MIB, 0)} |"
            )
    lines += [
        "",
        "Time per phase, from `FileSummary.phase_seconds` (seconds, and share of "
        "the median total); `rank_and_other` is the rest: ranking and "
        "bookkeeping.",
        "",
        "| events | format | read | features | inference | write | rank_and_other |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for formats in section["local"].values():
        for fmt, figure in formats.items():
            cells = [
                f"{figure['phase_seconds'][phase]['median']:.2f} "
                f"({figure['phase_share_of_median'][phase]:.0%})"
                for phase in (
                    "read",
                    "features",
                    "inference",
                    "write",
                    "rank_and_other",
                )
            ]
            lines.append(f"| {figure['rows']:,} | {fmt} | " + " | ".join(cells) + " |")
    if section.get("profile"):
        lines += ["", _profile(section["profile"])]
    return "\n".join(lines)


def _profile(profile: dict[str, Any]) -> str:
    lines = [
        f"### Profile of the {profile['rows']:,}-event CSV",
        "",
        f"pyinstrument (5 ms sampling) around `score_file`, "
        f"{profile['duration_seconds']:.1f} s in total. Functions with the most "
        f"time of their own (not in callees):",
        "",
        "| function | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    for entry in profile["top_self_time"][:12]:
        lines.append(
            f"| `{entry['function']}` | {entry['self_seconds']:.2f} | "
            f"{entry['share']:.0%} |"
        )
    tree = "\n".join(profile["tree"].splitlines()[:70])
    lines += [
        "",
        "<details><summary>Call tree (first 70 lines)</summary>",
        "",
        "```text",
        tree,
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines)


def _inference(section: dict[str, Any]) -> str:
    names = {
        "onnxruntime": "onnxruntime, `Bundle.predict` (chunks of 4096 rows)",
        "keras_predict_default": "Keras `model.predict`, default batch 32",
        "keras_predict_8192": "Keras `model.predict`, batch 8192",
        "tf_function": "`tf.function` call on the whole matrix",
    }
    threads = section["tensorflow_threads"]
    lines = [
        "## 2. Inference alone",
        "",
        f"The feature matrix of `{section['file']}`: {section['rows']:,} rows x "
        f"{section['features']} features, float32. onnxruntime ran with "
        f"{section['ort_threads']} intra-op threads; TensorFlow with its defaults "
        f"(intra-op {threads['intra_op']}, inter-op {threads['inter_op']}; 0 means "
        f"one per core). Every method ran once before timing. The ratio is the "
        f"method's seconds over onnxruntime's in the same repeat.",
        "",
        "| method | rows/s (M) | seconds | onnxruntime is faster by |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, figure in section["methods"].items():
        ratio = section["ratio_to_onnxruntime"].get(name)
        shown = _spread(ratio, digits=1) + "x" if ratio else "1x"
        lines.append(
            f"| {names.get(name, name)} | {_spread(figure['rows_per_second'], 1e6)} "
            f"| {_spread(figure['seconds'], digits=3)} | {shown} |"
        )
    return "\n".join(lines)


def _coldstart(section: dict[str, Any]) -> str:
    names = {
        "onnxruntime": "`import infer.handler` + `load_bundle`",
        "tensorflow": "`import tensorflow, keras` + `keras.saving.load_model`",
    }
    lines = [
        "## 3. Cold start",
        "",
        "A fresh `python -c` process each time, the two programs alternating; "
        "process seconds run from spawn to exit.",
        "",
        "| program | process seconds | import seconds | load seconds | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, name in names.items():
        figure = section[key]
        lines.append(
            f"| {name} | {_spread(figure['process_seconds'])} | "
            f"{_spread(figure['import_seconds'])} | {_spread(figure['load_seconds'])} "
            f"| {_spread(figure['peak_rss_bytes'], MIB, 0)} |"
        )
    ratio = section["ratio_tensorflow_to_onnxruntime"]
    lines += [
        "",
        f"TensorFlow path over ours, per repeat: {_spread(ratio, digits=1)}x.",
    ]
    return "\n".join(lines)


def _size(section: dict[str, Any]) -> str:
    lines = ["## 4. Artifact size", ""]
    package = section.get("zip")
    if package:
        built = (
            f", built by `infra.package.build_package` in "
            f"{package['build_seconds']:.0f} s"
            if package.get("build_seconds")
            else ""
        )
        lines += [
            f"`{package['path']}`{built}: "
            f"{package['zipped_bytes']['median'] / MIB:,.1f} MiB zipped, "
            f"{package['unzipped_bytes']['median'] / MIB:,.1f} MiB unzipped.",
            "",
            "| top-level entry | unzipped MiB | share |",
            "| --- | ---: | ---: |",
        ]
        total = package["unzipped_bytes"]["median"]
        for name, size in package["largest"]:
            lines.append(f"| `{name}` | {size / MIB:,.1f} | {size / total:.0%} |")
    else:
        lines.append(
            "No Lambda zip was measured (none found, and `--quick` builds none)."
        )
    lines += [
        "",
        "Installed size of the main scoring dependencies in this environment "
        "(before the package's stripping):",
        "",
        "| distribution | MiB |",
        "| --- | ---: |",
    ]
    for name, figure in section["installed"].items():
        lines.append(f"| {name} | {figure['median'] / MIB:,.1f} |")
    return "\n".join(lines)


def _training(section: dict[str, Any]) -> str:
    lines = [
        "## 5. Training",
        "",
        "Wall time of the command `make train` runs, as a fresh process (one run "
        "each, because it is the slowest figure to repeat).",
        "",
        "| data | command | seconds | peak RSS MiB |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, figure in section.items():
        if "skipped" in figure:
            lines.append(f"| {name} | skipped: {figure['skipped']} | | |")
            continue
        lines.append(
            f"| {name} | `{figure['command']}` | "
            f"{_spread(figure['seconds'], digits=0)} | "
            f"{_spread(figure['peak_rss_bytes'], MIB, 0)} |"
        )
    return "\n".join(lines)
