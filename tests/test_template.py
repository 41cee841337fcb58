"""Checks of the SAM template against the code it deploys (no AWS account)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_all

from infer import reader, settings
from infra.package import HANDLER, LAMBDA_RUNTIME, load_template, zip_template

# boto3 reads it; it points the S3 client at a local server in tests and is
# never set in AWS, where the client finds the regional endpoint itself.
NOT_DEPLOYED = {settings.AWS_ENDPOINT_URL_S3}
# Actions that read; every other action writes or deletes.
READ_ACTIONS = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def function_properties(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["ScoreFunction"]["Properties"]


def policy_statements(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every statement of the function role, both branches of each Fn::If."""
    for policy in template["Resources"]["FunctionRole"]["Properties"]["Policies"]:
        if "Fn::If" in policy:
            branches = policy["Fn::If"][1:]
            policies = [b for b in branches if b != {"Ref": "AWS::NoValue"}]
        else:
            policies = [policy]
        for each in policies:
            yield from each["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_text(resource: Any) -> str:
    """Return the ARN pattern of a resource: the string of its Fn::Sub."""
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return json.dumps(resource)


def s3_filters(template: dict[str, Any]) -> list[dict[str, Any]]:
    filters = []
    for event in function_properties(template)["Events"].values():
        if event["Type"] == "S3":
            rules = event["Properties"]["Filter"]["S3Key"]["Rules"]
            filters.append({rule["Name"]: rule["Value"] for rule in rules})
    return filters


def test_handler_resolves_to_function() -> None:
    module_name, _, attribute = HANDLER.rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


def test_zip_template_uses_handler(template: dict[str, Any]) -> None:
    properties = function_properties(zip_template(template, "lambda.zip", "x86_64"))
    assert properties["Handler"] == HANDLER
    assert properties["Runtime"] == LAMBDA_RUNTIME
    assert properties["PackageType"] == "Zip"


def test_environment_sets_every_setting(template: dict[str, Any]) -> None:
    variables = function_properties(template)["Environment"]["Variables"]
    for name in settings.ENVIRONMENT_VARIABLES:
        if name not in NOT_DEPLOYED:
            assert name in variables, f"{name} is read by the code but not set"


def test_environment_sets_only_known(template: dict[str, Any]) -> None:
    variables = function_properties(template)["Environment"]["Variables"]
    unknown = set(variables) - set(settings.ENVIRONMENT_VARIABLES)
    assert not unknown


def test_parameter_defaults_match_settings(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    defaults = settings.Settings()
    assert parameters["InputPrefix"]["Default"] == defaults.input_prefix
    assert parameters["OutputPrefix"]["Default"] == defaults.output_prefix
    assert parameters["ErrorPrefix"]["Default"] == defaults.error_prefix
    assert parameters["OutputFormat"]["Default"] == defaults.output_format
    assert parameters["OutputFormat"]["AllowedValues"] == list(settings.OUTPUT_FORMATS)
    assert int(parameters["MaxObjectBytes"]["Default"]) == defaults.max_object_bytes
    assert (
        float(parameters["MaxDecompressionRatio"]["Default"])
        == defaults.max_decompression_ratio
    )


def test_empty_defaults_read_as_unset(template: dict[str, Any]) -> None:
    # TOP_K, ORT_THREADS and MODEL_URI are deployed as "" by default.
    parameters = template["Parameters"]
    environ = {
        settings.TOP_K: parameters["TopK"]["Default"],
        settings.ORT_THREADS: parameters["OrtThreads"]["Default"],
        settings.MODEL_URI: "",
    }
    read = settings.Settings.from_env(environ)
    assert read.top_k is None
    assert read.model_uri == str(settings.PACKAGED_MODEL_DIR)


def test_filter_prefix_is_input_prefix(template: dict[str, Any]) -> None:
    filters = s3_filters(template)
    assert filters
    for rules in filters:
        assert rules["prefix"] == {"Ref": "InputPrefix"}


def test_filter_suffixes_match_reader(template: dict[str, Any]) -> None:
    suffixes = {rules["suffix"] for rules in s3_filters(template)}
    expected = set()
    for suffix, fmt in reader._SUFFIXES.items():
        expected.add(suffix)
        if fmt != "parquet":
            expected.add(f"{suffix}.gz")
    assert suffixes == expected
    for suffix in suffixes:
        reader.detect_format(f"events{suffix}")


def test_filter_events_are_object_created(template: dict[str, Any]) -> None:
    for event in function_properties(template)["Events"].values():
        assert event["Properties"]["Events"] == "s3:ObjectCreated:*"
        assert event["Properties"]["Bucket"] == {"Ref": "Bucket"}


def test_policy_has_no_wildcard_action(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action!r}"


def test_policy_allows_only(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement


def test_policy_writes_only_outputs(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        writes = [a for a in as_list(statement["Action"]) if a.startswith("s3:")]
        writes = [a for a in writes if a not in READ_ACTIONS]
        if not writes:
            continue
        for resource in as_list(statement["Resource"]):
            text = resource_text(resource)
            assert text.endswith(("/${OutputPrefix}*", "/${ErrorPrefix}*")), (
                f"{writes} allowed on {text}"
            )


def test_policy_reads_input_only(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        resources = [resource_text(r) for r in as_list(statement["Resource"])]
        if any("${InputPrefix}" in text for text in resources):
            assert set(as_list(statement["Action"])) <= {
                "s3:GetObject",
                "s3:GetObjectVersion",
            }


def test_policy_never_names_whole_bucket_objects(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        for resource in as_list(statement["Resource"]):
            text = resource_text(resource)
            assert not text.endswith("${BucketName}/*"), f"whole bucket: {text}"


def test_role_avoids_bucket_reference(template: dict[str, Any]) -> None:
    # The bucket's notification depends on the function, so a reference
    # from the function or its role back to the bucket is a cycle.
    resources = template["Resources"]
    for name in ("FunctionRole", "ScoreFunction"):
        properties = dict(resources[name]["Properties"])
        properties.pop("Events", None)
        text = json.dumps(properties)
        assert '{"Ref": "Bucket"}' not in text, name
        assert '"Bucket.' not in text, name
        assert "${Bucket}" not in text, name


def test_failed_events_go_to_queue(template: dict[str, Any]) -> None:
    config = function_properties(template)["EventInvokeConfig"]
    parameters = template["Parameters"]
    retries = parameters[config["MaximumRetryAttempts"]["Ref"]]
    age = parameters[config["MaximumEventAgeInSeconds"]["Ref"]]
    assert retries["MaxValue"] <= 2
    assert age["MaxValue"] <= 21600
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_role_may_send_to_queue(template: dict[str, Any]) -> None:
    queue = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    allowed = [
        s for s in policy_statements(template)
        if "sqs:SendMessage" in as_list(s["Action"]) and s["Resource"] == queue
    ]
    assert allowed


def test_bucket_is_private_and_encrypted(template: dict[str, Any]) -> None:
    properties = template["Resources"]["Bucket"]["Properties"]
    block = properties["PublicAccessBlockConfiguration"]
    for setting in (
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ):
        assert block[setting] is True, setting
    rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]


def test_log_group_has_retention(template: dict[str, Any]) -> None:
    properties = template["Resources"]["LogGroup"]["Properties"]
    assert properties["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    function_name = function_properties(template)["FunctionName"]["Fn::Sub"]
    assert properties["LogGroupName"]["Fn::Sub"] == f"/aws/lambda/{function_name}"


def test_outputs_name_bucket_function_queue(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["BucketName"]["Value"] == {"Ref": "Bucket"}
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["ScoreFunction", "Arn"]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}


def test_zip_template_passes_cfn_lint(
    template: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(zip_template(template, "lambda.zip", "x86_64")))
    # Errors and warnings, as the cfn-lint command reports by default.
    matches = [m for m in lint_all(path.read_text()) if m.rule.id[0] in "EW"]
    assert not matches, "\n".join(str(match) for match in matches)


def test_policy_deletes_stale_scores(template: dict[str, Any]) -> None:
    # A rejected new upload removes the scores of the previous one.
    allowed = [
        statement for statement in policy_statements(template)
        if "s3:DeleteObject" in as_list(statement["Action"])
        and any(resource_text(r).endswith("/${OutputPrefix}*")
                for r in as_list(statement["Resource"]))
    ]
    assert allowed
