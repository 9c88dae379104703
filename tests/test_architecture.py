"""The house keeps its rules: the domain is free of infrastructure, projections are free of
adapters, no module imports itself round a circle, and only the settings read the environment."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("orders", "projections", "adapters", "schemas")
DOMAIN = ROOT / "orders"
FORBIDDEN_ROOTS = {"adapters", "projections", "boto3", "botocore", "aiobotocore", "moto"}
SETTINGS_MODULE = "adapters.settings"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name."""
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *runtime_nodes(child)])
            continue
        yield node
        yield from runtime_nodes(node)


def imported_names(source: str) -> Iterator[str]:
    """Every dotted name ``source`` imports at run time (``from a.b import c`` gives ``a.b``
    and ``a.b.c``), wherever the import statement is, function bodies included; imports for
    type checkers only (``if TYPE_CHECKING:``) are not run, so they are not counted."""
    for node in runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def imported_roots(source: str) -> set[str]:
    """The top-level package of every module ``source`` imports, however it imports it."""
    return {name.split(".")[0] for name in imported_names(source)}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which of our modules each of our modules imports."""
    return {
        name: {imported for imported in imported_names(path.read_text()) if imported in modules}
        - {name}
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reads_environment(source: str) -> list[int]:
    """Lines of ``source`` that read the process environment (``os.environ``, ``getenv``,
    ``from os import environ``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {alias.name for alias in node.names} & {"environ", "getenv", "environb"}
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", sorted(DOMAIN.rglob("*.py")), ids=lambda p: p.name)
def test_domain_module_imports_no_infrastructure(path: Path) -> None:
    assert imported_roots(path.read_text()) & FORBIDDEN_ROOTS == set()


@pytest.mark.parametrize("path", sorted((ROOT / "projections").rglob("*.py")), ids=lambda p: p.name)
def test_projections_import_no_adapter(path: Path) -> None:
    assert "adapters" not in imported_roots(path.read_text())


def test_no_module_imports_itself_round_a_circle() -> None:
    assert cycles(import_graph(our_modules())) == []


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = {
        name: lines
        for name, path in our_modules().items()
        if name != SETTINGS_MODULE and (lines := reads_environment(path.read_text()))
    }
    assert readers == {}


@pytest.mark.parametrize(
    "source",
    [
        "import boto3",
        "from adapters.dynamodb import Factory",
        "import projections.views as v",
        "from botocore.exceptions import ClientError",
        "importlib.import_module('boto3')",
        "def f():\n    from adapters.cli.main import app",
        "if TYPE_CHECKING:\n    pass\nelse:\n    import boto3",
    ],
)
def test_the_check_sees_each_form_of_import(source: str) -> None:
    assert imported_roots(source) & FORBIDDEN_ROOTS


def test_imports_for_type_checkers_only_are_not_counted() -> None:
    assert imported_roots("if TYPE_CHECKING:\n    import boto3") == set()


def test_the_cycle_check_finds_a_cycle_and_only_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    "source",
    ["import os\nos.environ['X']", "import os\nos.getenv('X')", "from os import environ"],
)
def test_the_environment_check_sees_each_form_of_reading(source: str) -> None:
    assert reads_environment(source)
