"""Fixtures: an upgraded SQLite database per module, or a fresh one per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._support import Cli, make_cli


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One upgraded SQLite database shared by a module's tests (each uses its own emails)."""
    data_dir = tmp_path_factory.mktemp("faregate")
    return make_cli(data_dir, f"sqlite:///{data_dir / 'fg.db'}")


@pytest.fixture
def fresh_cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path, f"sqlite:///{tmp_path / 'fg.db'}")
