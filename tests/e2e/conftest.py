"""Fixtures for end-to-end tests: a deployment on SQLite, or on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Deployment, deployment
from tests.notify.test_email import smtp_server  # noqa: F401  (the aiosmtpd fixture)


@pytest.fixture
def sqlite_dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path / "fg") as dep:
        yield dep


@pytest.fixture
def pg_dep(tmp_path: Path, pg_database: str) -> Iterator[Deployment]:
    with deployment(tmp_path / "fg", pg_database) as dep:
        yield dep


@pytest.fixture(params=["sqlite", "postgres"])
def any_dep(request: pytest.FixtureRequest) -> Deployment:
    """The same test on both databases."""
    name = "sqlite_dep" if request.param == "sqlite" else "pg_dep"
    dep: Deployment = request.getfixturevalue(name)
    return dep
