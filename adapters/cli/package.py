"""``orders package``: the Lambda artifact the template's ``CodeKey`` names.

The zip holds the project's packages (``orders``, ``projections``, ``adapters``, ``schemas``)
and every runtime dependency, pinned to the version installed here (the closure of the
project's requirements), installed by ``pip install --target`` as wheels for the Lambda
runtime's platform and Python. Unzipped alone, it is a complete import path: every handler
of ``adapters.deploy.template.HANDLERS`` imports from it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.cli.output import emit, note, wants_json

PROJECT = "eventsourced-orders"
PACKAGES = ("orders", "projections", "adapters", "schemas")
LAMBDA_PYTHON = "3.12"
"""The Python of the template's runtime (``adapters.deploy.template.RUNTIME``)."""
LAMBDA_PLATFORM = "manylinux2014_x86_64"


def pinned_requirements(project: str = PROJECT) -> list[str]:
    """``name==version`` of every runtime dependency of ``project``, as installed here."""
    from importlib import metadata  # noqa: PLC0415

    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    pins: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        distribution = metadata.distribution(name)
        if name != project:
            pins[canonicalize_name(name)] = distribution.version
        for text in distribution.requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                pending.append((requirement.name, frozenset(requirement.extras)))
    return sorted(f"{name}=={version}" for name, version in pins.items())


def project_root() -> Path:
    """The folder holding the project's packages (this checkout or the installed tree)."""
    import orders  # noqa: PLC0415

    return Path(orders.__file__).resolve().parents[1]


def install_dependencies(
    pins: list[str], target: Path, *, python_version: str, platform: str
) -> None:
    """``pip install --target`` the pinned wheels for ``platform`` and ``python_version``."""
    import subprocess  # noqa: PLC0415

    requirements = target.parent / f"{target.name}.txt"
    requirements.write_text("\n".join(pins) + "\n")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={python_version}",
        f"--platform={platform}",
        f"--target={target}",
        "-r",
        str(requirements),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        from adapters.cli.errors import CommandError  # noqa: PLC0415

        last = (completed.stderr.strip().splitlines() or ["(no output)"])[-1]
        msg = f"pip install of the pinned dependencies failed: {last}"
        raise CommandError(msg)


def write_zip(path: Path, dependencies: Path, root: Path) -> int:
    """Write the zip (dependencies, then the project's packages); the number of files."""
    import zipfile  # noqa: PLC0415

    files = [(file, file.relative_to(dependencies)) for file in sorted(dependencies.rglob("*"))]
    for package_name in PACKAGES:
        files += [
            (file, file.relative_to(root)) for file in sorted((root / package_name).rglob("*"))
        ]
    written = 0
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for file, name in files:
            if file.is_file() and "__pycache__" not in name.parts and file.suffix != ".pyc":
                archive.write(file, name.as_posix())
                written += 1
    partial.replace(path)
    return written


def package(
    context: typer.Context,
    zip_path: Annotated[
        Path, typer.Option("--zip", help="The zip to write (upload it as the CodeKey)")
    ] = Path("orders.zip"),
    python_version: Annotated[
        str, typer.Option(help="Python of the Lambda runtime the wheels are for")
    ] = LAMBDA_PYTHON,
    platform: Annotated[str, typer.Option(help="Platform the wheels are for")] = LAMBDA_PLATFORM,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep installed dependencies here, reused while the pins are the same"),
    ] = None,
) -> None:
    """Build the Lambda zip: this project and its pinned dependencies."""
    import hashlib  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    pins = pinned_requirements()
    key = hashlib.sha256("\n".join([python_version, platform, *pins]).encode()).hexdigest()[:16]
    with tempfile.TemporaryDirectory() as scratch:
        dependencies = (cache_dir or Path(scratch)) / f"dependencies-{key}"
        if not dependencies.is_dir():
            note(f"installing {len(pins)} pinned dependencies for Python {python_version}")
            building = dependencies.with_name(dependencies.name + ".partial")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            install_dependencies(pins, building, python_version=python_version, platform=platform)
            building.replace(dependencies)
        files = write_zip(zip_path, dependencies, project_root())
    size = zip_path.stat().st_size
    if wants_json(context):
        emit(
            context,
            {"zip": str(zip_path), "bytes": size, "files": files, "dependencies": pins},
        )
    else:
        typer.echo(f"{zip_path}: {files} files, {size:,} bytes, {len(pins)} dependencies")
