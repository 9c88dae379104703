"""The domain stays free of infrastructure: `orders/` imports no adapter, projection or AWS SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parent.parent / "orders"
FORBIDDEN_ROOTS = {"adapters", "projections", "boto3", "botocore", "aiobotocore", "moto"}


def imported_roots(source: str) -> set[str]:
    """The top-level package of every module ``source`` imports, however it imports it."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(DOMAIN.rglob("*.py")), ids=lambda p: p.name)
def test_domain_module_imports_no_infrastructure(path: Path) -> None:
    assert imported_roots(path.read_text()) & FORBIDDEN_ROOTS == set()


@pytest.mark.parametrize(
    "source",
    [
        "import boto3",
        "from adapters.dynamodb import Factory",
        "import projections.views as v",
        "from botocore.exceptions import ClientError",
        "importlib.import_module('boto3')",
    ],
)
def test_the_check_sees_each_form_of_import(source: str) -> None:
    assert imported_roots(source) & FORBIDDEN_ROOTS
