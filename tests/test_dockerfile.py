"""Checks of infra/Dockerfile, parsed (no container engine needed)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from infer.settings import PACKAGED_MODEL_DIRNAME
from infra.package import (
    HANDLER,
    LAMBDA_PYTHON_VERSION,
    REPO_ROOT,
    TRAINING_ONLY,
    pinned_requirements,
)

DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def parse(path: Path) -> list[tuple[str, str]]:
    """Return ``(INSTRUCTION, arguments)`` pairs, continuation lines joined."""
    instructions = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return parse(DOCKERFILE)


def arguments_of(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions if name == keyword]


def test_single_stage_on_lambda_image(instructions: list[tuple[str, str]]) -> None:
    assert arguments_of(instructions, "FROM") == [
        f"public.ecr.aws/lambda/python:{LAMBDA_PYTHON_VERSION}"
    ]


def test_installs_only_pinned_requirements(
    instructions: list[tuple[str, str]],
) -> None:
    runs = arguments_of(instructions, "RUN")
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 1
    words = shlex.split(installs[0])
    assert "--requirement" in words
    assert words[words.index("--requirement") + 1] == "/tmp/requirements-lambda.txt"
    # No project install: `pip install .` or `.[train]` would pull the extras.
    assert "." not in words
    assert not any("[train" in word for word in words)


def test_requirements_leave_out_training(
    instructions: list[tuple[str, str]],
) -> None:
    pins = pinned_requirements()
    for name in TRAINING_ONLY:
        assert name not in pins, name
    copies = arguments_of(instructions, "COPY")
    assert "infra/requirements-lambda.txt /tmp/requirements-lambda.txt" in copies


def test_copies_code_and_bundle(instructions: list[tuple[str, str]]) -> None:
    copies = [shlex.split(each) for each in arguments_of(instructions, "COPY")]
    sources = {words[0] for words in copies}
    assert sources == {"infra/requirements-lambda.txt", "infer/", "${MODEL}/"}
    targets = {words[0]: words[1] for words in copies}
    assert targets["infer/"] == "${LAMBDA_TASK_ROOT}/infer/"
    assert targets["${MODEL}/"] == f"${{LAMBDA_TASK_ROOT}}/{PACKAGED_MODEL_DIRNAME}/"
    assert "train" not in " ".join(sources)


def test_model_argument_in_context(instructions: list[tuple[str, str]]) -> None:
    arguments = arguments_of(instructions, "ARG")
    assert arguments == ["MODEL=build/model"]
    ignore = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert "!build/model/" in ignore
    assert "!infer/" in ignore


def test_command_is_handler(instructions: list[tuple[str, str]]) -> None:
    commands = arguments_of(instructions, "CMD")
    assert [json.loads(command) for command in commands] == [[HANDLER]]
