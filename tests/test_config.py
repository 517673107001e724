"""Settings: environment and TOML file, database URL forms, generated secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from faregate.config import Settings, normalize_database_url


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://u:p@h:5/db", "postgresql+psycopg://u:p@h:5/db"),
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ("sqlite+aiosqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_database_url_forms_map_to_our_driver(given: str, used: str) -> None:
    assert normalize_database_url(given) == used


def test_unknown_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAREGATE_DATABASE_URL", "mysql://u@h/db")
    with pytest.raises(ValidationError, match="sqlite:// or postgresql://"):
        Settings()


def test_defaults_env_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "WORKERS", "DATA_DIR", "DATABASE_URL", "CONFIG_FILE"):
        monkeypatch.delenv(f"FAREGATE_{name}", raising=False)
    defaults = Settings()
    assert (defaults.host, defaults.port, defaults.workers) == ("127.0.0.1", 8000, 1)
    assert defaults.data_dir == Path("./var")
    config = tmp_path / "faregate.toml"
    config.write_text('port = 9001\nworkers = 3\nlog_level = "debug"\n')
    monkeypatch.setenv("FAREGATE_CONFIG_FILE", str(config))
    monkeypatch.setenv("FAREGATE_WORKERS", "2")  # the environment wins over the file
    monkeypatch.setenv("FAREGATE_DATA_DIR", str(tmp_path / "data"))
    s = Settings()
    assert (s.port, s.workers, s.log_level) == (9001, 2, "debug")
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'faregate.db'}"
    monkeypatch.setenv("FAREGATE_PORT", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_secrets_are_generated_once_with_owner_only_access(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAREGATE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FAREGATE_KEY_PEPPER", raising=False)
    first = Settings().secret("key_pepper")
    assert first == Settings().secret("key_pepper")
    path = tmp_path / "secrets" / "key_pepper"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 43  # 32 random bytes, base64
    monkeypatch.setenv("FAREGATE_KEY_PEPPER", "configured")
    assert Settings().secret("key_pepper") == b"configured"
    assert "configured" not in repr(Settings())
