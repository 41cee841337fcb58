"""Build the Lambda zip package of the scoring function.

``python -m infra.package --model <bundle folder> --out build/lambda.zip``
installs the pinned scoring dependencies (``infra/requirements-lambda.txt``)
as manylinux wheels for the Lambda runtime, adds the ``infer`` package and
the bundle's manifest and ONNX file (as ``model/``, where ``infer.settings``
looks for it),
removes what the function never imports (tests, caches, type stubs), and
writes the zip. It prints the zipped and unzipped sizes and the largest
dependencies, and fails when the unzipped size passes AWS's 250 MB limit.

Beside the zip it writes ``template.json``: the stack of
``infra/template.yaml`` with the function as this zip instead of a container
image, ready for ``sam deploy --template-file``.

Nothing is compiled here: pip downloads binary wheels only
(``--only-binary=:all:``), so the package builds on any machine with
network access to the package index.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cfnlint.decode import cfn_yaml

from infer.settings import PACKAGED_MODEL_DIRNAME

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "infra" / "requirements-lambda.txt"
TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
SOURCE_PACKAGES = ("infer",)
HANDLER = "infer.handler.lambda_handler"

# The Lambda runtime the package is built for. python3.12 runs on Amazon
# Linux 2023 (glibc 2.34); python3.11 runs on Amazon Linux 2 (glibc 2.26),
# which cannot load the manylinux_2_27/2_28 wheels of numpy 2.4.6,
# pyarrow 26.0.1 and onnxruntime 1.32.0. The Dockerfile's base image and
# the template's Runtime use the same version.
LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_RUNTIME = f"python{LAMBDA_PYTHON_VERSION}"
# pip accepts a wheel whose tag is any of these; manylinux_2_28 needs
# glibc 2.28, which Amazon Linux 2023 exceeds.
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}
# Lambda's Python runtime provides these; the package must not shadow them.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3"})
# Packages that only the training stage needs; none may reach the package.
TRAINING_ONLY = frozenset({"tensorflow", "tensorflow_cpu", "keras", "tf2onnx", "onnx"})
# AWS Lambda's limit on the unzipped size of a zip package, layers included:
# 250 MB, which Lambda counts as 262,144,000 bytes.
MIB = 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * MIB
# Folder names and file suffixes that the function never imports at run time:
# tests, bytecode caches (Lambda's task root is read-only, so Python could
# not reuse them anyway), type stubs, and C/C++/Cython sources and headers
# that only extension builds read.
STRIPPED_DIRS = frozenset({"__pycache__", "tests"})
STRIPPED_SUFFIXES = (
    ".pyc",
    ".pyi",
    ".pyx",
    ".pxd",
    ".pxi",
    ".h",
    ".hpp",
    ".cc",
    ".cpp",
)
# Parts of the dependencies that scoring never loads, removed to stay under
# the 250 MB limit. pyarrow: Arrow Flight RPC, the S3, GCS, Azure and HDFS
# filesystems (the function reads S3 with boto3), ORC, its C++ test module
# and headers. onnxruntime: the model-optimization and quantization tools.
# The zip-scoring test imports and runs the package without them.
UNUSED_PATHS = (
    "pyarrow/include",
    "pyarrow/includes",
    "pyarrow/src",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_flight.*.so",
    "pyarrow/libarrow_s3.so*",
    "pyarrow/_s3fs.*.so",
    "pyarrow/_gcsfs.*.so",
    "pyarrow/_azurefs.*.so",
    "pyarrow/_hdfs.*.so",
    "pyarrow/_orc.*.so",
    "pyarrow/_dataset_orc.*.so",
    "pyarrow/_pyarrow_cpp_tests.*.so",
    "onnxruntime/datasets",
    "onnxruntime/quantization",
    "onnxruntime/tools",
    "onnxruntime/transformers",
    # The C API library for programs in other languages. The Python module
    # (onnxruntime_pybind11_state) contains the runtime itself and does not
    # load it: ldd lists no link to it, and a session runs without it.
    "onnxruntime/capi/libonnxruntime.so*",
    "numpy/_core/include",
    "numpy/f2py",
)
# A wheel cannot hold symbolic links, so pyarrow ships each of its own
# libraries three times: libX.so, libX.so.MAJOR (the name the loader looks
# up) and libX.so.MAJOR.MINOR.PATCH. Only libX.so.MAJOR is kept.
_VERSIONED_LIBRARY = re.compile(r"^(lib.+\.so)(\.\d+)(\.\d+)*$")
# A fixed time for every zip entry, so the same inputs give the same zip.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """The Lambda package could not be built, or is over Lambda's limits."""


@dataclass(frozen=True)
class PackageReport:
    """Sizes of a built Lambda zip.

    Attributes
    ----------
    zip_path:
        The zip written.
    zipped_bytes:
        Size of the zip file.
    unzipped_bytes:
        Sum of the uncompressed sizes of its files.
    largest:
        ``(top-level name, unzipped bytes)`` of each top-level folder or file
        in the zip, largest first.
    """

    zip_path: Path
    zipped_bytes: int
    unzipped_bytes: int
    largest: tuple[tuple[str, int], ...]


def build_package(
    model_dir: Path,
    out: Path,
    *,
    architecture: str = "x86_64",
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
) -> PackageReport:
    """Build the Lambda zip package and its zip-shaped SAM template.

    Parameters
    ----------
    model_dir:
        A model bundle folder (``manifest.json`` and the ONNX file).
    out:
        Path of the zip to write; ``template.json`` is written beside it.
    architecture:
        ``"x86_64"`` or ``"arm64"``: the instruction set of the wheels.
    max_unzipped_bytes:
        The unzipped size above which the build fails.

    Returns
    -------
    PackageReport
        The sizes of the zip written.

    Raises
    ------
    PackageError
        If the bundle is incomplete, pip fails, a package that the runtime
        provides or that only training needs was installed, or the unzipped
        size passes ``max_unzipped_bytes`` (the zip is still written, so its
        contents can be inspected).
    """
    if architecture not in PLATFORMS:
        raise PackageError(
            f"architecture {architecture!r} is not supported; "
            f"use one of {', '.join(PLATFORMS)}"
        )
    check_bundle(model_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lambda-", dir=out.parent) as staging:
        root = Path(staging)
        install_dependencies(root, architecture)
        check_installed(root)
        copy_sources(root)
        copy_bundle(model_dir, root / PACKAGED_MODEL_DIRNAME)
        strip(root)
        strip_symbols(root)
        write_zip(root, out)
    write_zip_template(out, architecture)
    report = measure(out)
    if report.unzipped_bytes > max_unzipped_bytes:
        raise PackageError(
            f"{out}: unzipped size {report.unzipped_bytes:,} bytes is over the "
            f"limit of {max_unzipped_bytes:,} bytes; deploy the container image "
            f"instead (see infra/README.md) or remove dependencies"
        )
    return report


def check_bundle(model_dir: Path) -> list[str]:
    """Check that ``model_dir`` holds a model bundle's manifest and ONNX file.

    Returns
    -------
    list[str]
        The names of the files that scoring reads: ``manifest.json`` and the
        ONNX file that it names.

    Raises
    ------
    PackageError
        If the folder, ``manifest.json`` or the ONNX file it names is missing.
    """
    manifest_path = model_dir / "manifest.json"
    if not manifest_path.is_file():
        raise PackageError(
            f"{model_dir}: not a model bundle, manifest.json not found; pass "
            f"--model with a folder written by `make train`, such as "
            f"artifacts/latest"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        onnx_file = manifest["onnx"]["file"]
    except (ValueError, KeyError, TypeError) as error:
        raise PackageError(
            f"{manifest_path}: invalid manifest, expected JSON with onnx.file "
            f"({error!r}); retrain the bundle with `make train`"
        ) from error
    if not (model_dir / onnx_file).is_file():
        raise PackageError(
            f"{model_dir}: the ONNX file {onnx_file!r} named in manifest.json "
            f"was not found; retrain the bundle with `make train`"
        )
    return ["manifest.json", onnx_file]


def copy_bundle(model_dir: Path, target: Path) -> None:
    """Copy the files of a bundle that scoring reads into the new folder ``target``.

    The Keras model, the report and its plots stay out: only training tools
    read them.

    Raises
    ------
    PackageError
        If ``model_dir`` is not a complete bundle.
    """
    names = check_bundle(model_dir)
    target.mkdir(parents=True)
    for name in names:
        shutil.copy2(model_dir / name, target / name)


def install_dependencies(target: Path, architecture: str) -> None:
    """Install the pinned requirements as Lambda wheels into ``target``.

    Raises
    ------
    PackageError
        If pip fails.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--only-binary=:all:",
        "--requirement",
        str(REQUIREMENTS),
    ]
    for platform in PLATFORMS[architecture]:
        command += ["--platform", platform]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(
            f"pip could not install {REQUIREMENTS.name} for {LAMBDA_RUNTIME} "
            f"{architecture} (exit {result.returncode}): {result.stderr.strip()}"
        )


def installed_distributions(target: Path) -> dict[str, str]:
    """Return ``{normalized name: version}`` of the distributions in ``target``."""
    found = {}
    for info in target.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        found[normalize(name)] = version
    return found


def pinned_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """Return ``{normalized name: version}`` of the ``name==version`` lines."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        name, separator, version = text.partition("==")
        if not separator:
            raise PackageError(
                f"{path}: {text!r} is not pinned; write it as name==version"
            )
        pins[normalize(name)] = version.strip()
    return pins


def check_installed(target: Path) -> None:
    """Check that pip installed exactly the pinned distributions.

    Raises
    ------
    PackageError
        If a distribution is unpinned (pip pulled in a new dependency), is
        provided by the Lambda runtime, or belongs to the training stage.
    """
    installed = installed_distributions(target)
    pins = pinned_requirements()
    unpinned = sorted(set(installed) - set(pins))
    if unpinned:
        raise PackageError(
            f"pip installed distributions that {REQUIREMENTS.name} does not pin: "
            f"{', '.join(unpinned)}; add them with the versions the tests use"
        )
    excluded = {normalize(name) for name in RUNTIME_PROVIDED | TRAINING_ONLY}
    forbidden = sorted(set(installed) & excluded)
    if forbidden:
        raise PackageError(
            f"the package must not contain {', '.join(forbidden)}: the Lambda "
            f"runtime provides boto3 and its dependencies, and training "
            f"libraries do not belong in the scoring function"
        )


def copy_sources(target: Path) -> None:
    """Copy the function's own packages (``infer``) into ``target``."""
    for package in SOURCE_PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )


def strip(root: Path) -> None:
    """Remove what the function never loads from the staging folder ``root``.

    That is test folders, bytecode caches, type stubs, sources and headers
    (``STRIPPED_DIRS``, ``STRIPPED_SUFFIXES``), the unused parts of the
    dependencies (``UNUSED_PATHS``), and extra copies of shared libraries.
    """
    for pattern in UNUSED_PATHS:
        for path in root.glob(pattern):
            remove(path)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and path.name in STRIPPED_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and path.name.endswith(STRIPPED_SUFFIXES):
            path.unlink()
    remove_library_copies(root)


def strip_symbols(root: Path) -> None:
    """Remove the symbol tables that linking does not need from shared libraries.

    ``strip --strip-unneeded`` keeps the dynamic symbols that loading uses.
    Libraries that auditwheel vendored into ``*.libs`` folders are left
    alone, because patchelf rewrote their headers and strip then breaks
    them (numpy's OpenBLAS failed to load: "ELF load command address/offset
    not page-aligned"). A library that this machine's ``strip`` cannot read
    (another architecture's) is kept as is.
    """
    tool = shutil.which("strip")
    if tool is None:
        print("strip not found: shared libraries keep their symbol tables")
        return
    libraries = [
        path
        for path in sorted(root.rglob("*.so*"))
        if path.is_file()
        and not path.is_symlink()
        and not any(part.endswith(".libs") for part in path.relative_to(root).parts)
        and _is_elf(path)
    ]
    kept = 0
    for path in libraries:
        done = subprocess.run(
            [tool, "--strip-unneeded", str(path)], capture_output=True, check=False
        )
        kept += done.returncode != 0
    if kept:
        print(f"strip could not read {kept} of {len(libraries)} libraries; kept as is")


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def remove_library_copies(root: Path) -> None:
    """Keep one copy, ``libX.so.MAJOR``, of each library shipped under three names."""
    for path in sorted(root.rglob("lib*.so.*")):
        match = _VERSIONED_LIBRARY.match(path.name)
        if match is None or match.group(3) is not None:
            continue
        loader_name, major = match.group(1), match.group(2)
        for copy in path.parent.glob(f"{loader_name}*"):
            linker_name = copy.name == loader_name
            if linker_name or copy.name.startswith(f"{loader_name}{major}."):
                copy.unlink()


def remove(path: Path) -> None:
    """Remove a file or a folder tree."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_zip(root: Path, out: Path) -> None:
    """Write every file under ``root`` into the zip ``out``, in sorted order."""
    files = sorted(path for path in root.rglob("*") if path.is_file())
    partial = out.with_name(f"{out.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            # Lambda runs the code as a user other than the owner, so every
            # file must be readable by all; shared libraries keep their x bit.
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = mode << 16
            with path.open("rb") as source, archive.open(info, "w") as target:
                shutil.copyfileobj(source, target, 1 << 20)
    partial.replace(out)


def measure(zip_path: Path) -> PackageReport:
    """Measure the zipped and unzipped sizes of ``zip_path``, per top-level name."""
    by_top: dict[str, int] = {}
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            top = info.filename.split("/", 1)[0]
            by_top[top] = by_top.get(top, 0) + info.file_size
    largest = tuple(sorted(by_top.items(), key=lambda item: item[1], reverse=True))
    return PackageReport(
        zip_path=zip_path,
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=sum(by_top.values()),
        largest=largest,
    )


def load_template(path: Path = TEMPLATE) -> dict:
    """Load a CloudFormation template, with short-form tags as long-form dicts."""
    template = cfn_yaml.load(str(path))
    return json.loads(json.dumps(template))


def zip_template(template: dict, code_uri: str, architecture: str) -> dict:
    """Return ``template`` with its function deployed from a zip, not an image."""
    function = template["Resources"]["ScoreFunction"]
    function.pop("Metadata", None)
    properties = function["Properties"]
    properties["PackageType"] = "Zip"
    properties["Runtime"] = LAMBDA_RUNTIME
    properties["Handler"] = HANDLER
    properties["CodeUri"] = code_uri
    template["Parameters"]["Architecture"]["AllowedValues"] = [architecture]
    template["Parameters"]["Architecture"]["Default"] = architecture
    return template


def write_zip_template(zip_path: Path, architecture: str) -> Path:
    """Write ``template.json`` beside ``zip_path``, with the function as that zip."""
    template = zip_template(load_template(), zip_path.name, architecture)
    path = zip_path.with_name("template.json")
    path.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    return path


def normalize(name: str) -> str:
    """Return a distribution name in PEP 503 normal form (``python-dateutil``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def format_report(report: PackageReport, top: int = 8) -> Iterable[str]:
    """Yield the lines that ``main`` prints about a built package."""
    yield f"wrote {report.zip_path}"
    yield (
        f"zipped size:   {report.zipped_bytes / MIB:8.1f} MiB "
        f"({report.zipped_bytes:,} bytes)"
    )
    yield (
        f"unzipped size: {report.unzipped_bytes / MIB:8.1f} MiB "
        f"({report.unzipped_bytes:,} bytes; Lambda's limit is "
        f"{MAX_UNZIPPED_BYTES:,})"
    )
    yield "largest entries (unzipped):"
    for name, size in report.largest[:top]:
        yield f"  {size / MIB:8.1f} MiB  {name}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: build the package, print its sizes."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.package",
        description="Build the Lambda zip package of the scoring function.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="model bundle folder to put in the package, such as artifacts/latest",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/lambda.zip"),
        help="zip to write (default build/lambda.zip); template.json goes beside it",
    )
    parser.add_argument(
        "--bundle-only",
        type=Path,
        metavar="FOLDER",
        help="only copy the bundle's scoring files into FOLDER (replaced if it "
        "exists), for the container image, and build no zip",
    )
    parser.add_argument(
        "--architecture",
        choices=sorted(PLATFORMS),
        default="x86_64",
        help="instruction set of the function (default x86_64)",
    )
    args = parser.parse_args(argv)
    if args.bundle_only is not None:
        try:
            if args.bundle_only.exists():
                shutil.rmtree(args.bundle_only)
            copy_bundle(args.model, args.bundle_only)
        except PackageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"copied the bundle's scoring files to {args.bundle_only}")
        return 0
    try:
        report = build_package(args.model, args.out, architecture=args.architecture)
    except PackageError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.out.is_file():
            for line in format_report(measure(args.out)):
                print(line, file=sys.stderr)
        return 1
    for line in format_report(report):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
