"""``orders package`` builds the Lambda zip; unpacked alone into an empty folder, it imports and
runs every function of the template, with the environment the template gives it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.deploy.template import HANDLERS, template
from tests.support.moto_server import MotoServer
from tests.test_stack import STACK, stack  # noqa: F401 - the fixture: the template on moto

# moto's CloudFormation skips queue policies and alarms with a warning (as in test_stack).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "package-dependencies"
"""Installed dependencies, reused while the pins are the same (pip runs once per pin set)."""

LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

INVOKE = """
import json, sys
from importlib import import_module
folder = sys.argv[1]
assert not [p for p in sys.path if "site-packages" in p], sys.path
module_name, _, function_name = sys.argv[2].rpartition(".")
module = import_module(module_name)
assert module.__file__.startswith(folder), module.__file__
import pydantic, boto3, eventsourcing, aws_lambda_powertools
for dependency in (pydantic, boto3, eventsourcing, aws_lambda_powertools):
    assert dependency.__file__.startswith(folder), dependency.__file__

class Context:
    function_name = "orders-test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:orders-test"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/orders-test"
    log_stream_name = "test"
    def get_remaining_time_in_millis(self):
        return 60_000

result = getattr(module, function_name)(json.loads(sys.argv[3]), Context())
print("RESULT " + json.dumps(result, default=str))
"""


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The zip ``orders package`` built (for this Python, so it imports here), unpacked into
    an empty folder, and what the command printed."""
    folder = tmp_path_factory.mktemp("package")
    archive = folder.parent / f"{folder.name}.zip"
    result = CliRunner().invoke(
        app,
        [
            *("package", "--zip", str(archive), "--python-version", LOCAL_PYTHON),
            *("--cache-dir", str(CACHE), "--output", "json"),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(folder)
    return folder, printed


def test_the_zip_holds_the_project_and_every_pinned_dependency(
    unpacked: tuple[Path, dict[str, Any]],
) -> None:
    folder, printed = unpacked
    assert printed["bytes"] == Path(printed["zip"]).stat().st_size
    for package in ("orders", "projections", "adapters", "schemas"):
        assert (folder / package / "__init__.py").is_file(), package
    assert (folder / "schemas" / "OrderPlaced.schema.json").is_file()
    installed = set()
    for dist_info in folder.glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").split("-", 1)
        installed.add(f"{re.sub(r'[-_.]+', '-', name.lower())}=={version}")
    assert set(printed["dependencies"]) <= installed, set(printed["dependencies"]) - installed
    assert not list(folder.rglob("__pycache__"))


def resolve(value: Any, physical: dict[str, str], outputs: dict[str, str]) -> str:
    """A template value of a function's environment, on the stack moto made: a stack output
    with the same expression, else the resource's physical id or the parameter's value."""
    if isinstance(value, str):
        return value
    if json.dumps(value, sort_keys=True) in outputs:
        return outputs[json.dumps(value, sort_keys=True)]
    if "Ref" in value:
        return physical[value["Ref"]]
    if "Fn::GetAtt" in value:
        resource, _ = value["Fn::GetAtt"]
        return physical[resource]
    if "Fn::Sub" in value:
        return re.sub(r"\$\{(\w+)\}", lambda m: physical[m[1]], value["Fn::Sub"])
    msg = f"cannot resolve {value!r}"
    raise AssertionError(msg)


SQS_RECORD = {
    "messageId": "m-1",
    "receiptHandle": "r-1",
    "body": "not json",
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1796296367969",
        "SenderId": "123456789012",
        "ApproximateFirstReceiveTimestamp": "1796296367969",
    },
    "messageAttributes": {},
    "md5OfBody": "0" * 32,
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders-test-views",
    "awsRegion": "us-east-1",
}
EVENTS = {
    HANDLERS["Indexer"]: {"Records": []},
    HANDLERS["Relay"]: {},
    HANDLERS["Projections"]: {},
    HANDLERS["Consumer"]: {"Records": [SQS_RECORD]},  # a malformed message: it fails alone
}


def test_every_function_of_the_template_runs_from_the_unpacked_zip_alone(
    unpacked: tuple[Path, dict[str, Any]],
    stack: tuple[MotoServer, dict[str, str]],  # noqa: F811 - the fixture, imported
) -> None:
    folder, _ = unpacked
    server, stack_outputs = stack
    resources = server.client("cloudformation").describe_stack_resources(StackName=STACK)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if "PhysicalResourceId" in r  # moto skips some kinds (policies, alarms)
    }
    physical |= {"ServiceName": "orders", "MetricsNamespace": "EventsourcedOrders"}
    outputs = {
        json.dumps(output["Value"], sort_keys=True): stack_outputs[name]
        for name, output in template()["Outputs"].items()
    }
    functions = {
        name: resource["Properties"]
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert {properties["Handler"] for properties in functions.values()} == set(HANDLERS.values())
    for name, properties in functions.items():
        variables = properties["Environment"]["Variables"]
        env = {key: resolve(value, physical, outputs) for key, value in variables.items()}
        handler = properties["Handler"]
        completed = subprocess.run(
            [sys.executable, "-S", "-c", INVOKE, str(folder), handler, json.dumps(EVENTS[handler])],
            cwd=folder,
            env={**server.env(), **env, "PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert completed.returncode == 0, (name, completed.stderr[-3000:])
        (line,) = [x for x in completed.stdout.splitlines() if x.startswith("RESULT ")]
        result = json.loads(line.removeprefix("RESULT "))
        if handler == HANDLERS["Consumer"]:
            assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}, name
        elif handler == HANDLERS["Relay"]:
            assert result["published"] == 0 and result["lag"] == 0, result
        else:
            assert isinstance(result, dict), (name, result)
