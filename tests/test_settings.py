"""One settings model: what the template sets is what the handlers read, and a bad setting is
one line at start-up."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.deploy.template import template
from adapters.settings import Backend, Settings, SettingsError, WriteMode

runner = CliRunner()


def functions() -> dict[str, dict[str, Any]]:
    """Each Lambda function of the template, by logical id."""
    return {
        name: resource["Properties"]
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def needs(handler: str) -> frozenset[str]:
    """The settings the handler's module says its function must be given."""
    module = importlib.import_module(handler.rpartition(".")[0])
    declared: frozenset[str] = module.NEEDS
    return declared


@pytest.mark.parametrize("function", sorted(functions()))
def test_every_variable_the_template_sets_is_a_setting(function: str) -> None:
    variables = set(functions()[function]["Environment"]["Variables"])
    assert variables - set(Settings.variables().values()) == set()


@pytest.mark.parametrize("function", sorted(functions()))
def test_every_setting_a_handler_needs_is_set_by_the_template(function: str) -> None:
    properties = functions()[function]
    given = set(properties["Environment"]["Variables"])
    wanted = {Settings.variable(name) for name in needs(properties["Handler"])}
    assert wanted, f"{properties['Handler']} declares no settings"
    assert wanted - given == set()


def test_the_template_deploys_the_dynamodb_backend_in_the_indexed_mode() -> None:
    for properties in functions().values():
        variables = properties["Environment"]["Variables"]
        assert variables[Settings.variable("backend")] == Backend.DYNAMODB.value
        assert variables[Settings.variable("write_mode")] == WriteMode.INDEXED.value


def test_options_win_over_the_environment_which_wins_over_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", "from-env")
    monkeypatch.setenv("ORDERS_BUS_NAME", "bus-from-env")
    monkeypatch.delenv("ORDERS_RELAY_LEASE_SECONDS", raising=False)
    settings = Settings.load(events_table="from-option")
    assert (settings.events_table, settings.bus_name) == ("from-option", "bus-from-env")
    sources = settings.sources()
    assert (sources["events_table"], sources["bus_name"]) == ("option", "environment")
    assert sources["relay_lease_seconds"] == "default"


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("ORDERS_MAX_ATTEMPTS", "abc", "valid integer"),
        ("ORDERS_BACKEND", "postgres", "must be one of local, dynamodb or memory"),
        ("DYNAMODB_WRITE_MODE", "fast", "must be one of transactional or indexed"),
        ("DYNAMODB_CREATE_TABLE", "maybe", "must be a boolean"),
        ("ORDERS_RELAY_LEASE_SECONDS", "-1", "greater than 0"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable) as raised:
        Settings.load()
    assert said in str(raised.value)
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert f"{variable}={value!r}" in line and said in line


def test_orders_config_shows_each_setting_its_source_and_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    monkeypatch.setenv("ORDERS_BUS_NAME", "orders-test")
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "config", "--output", "json"])
    assert result.exit_code == 0, result.output
    assert "very-secret-value" not in result.output
    rows = {row["variable"]: row for row in json.loads(result.output)}
    assert set(rows) == set(Settings.variables().values())
    assert rows["AWS_SECRET_ACCESS_KEY"]["value"] == "****"
    assert (rows["ORDERS_BUS_NAME"]["value"], rows["ORDERS_BUS_NAME"]["source"]) == (
        "orders-test",
        "environment",
    )
    assert rows["ORDERS_DATA_DIR"] == {
        "variable": "ORDERS_DATA_DIR",
        "value": str(tmp_path),
        "source": "option",
        "description": Settings.model_fields["data_dir"].description,
    }
    assert not list(tmp_path.iterdir()), "config created files"
