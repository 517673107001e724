"""Running the real `faregate` command in a subprocess against a throwaway database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Cli:
    data_dir: Path
    database_url: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAREGATE_")}
        env.update(FAREGATE_DATA_DIR=str(self.data_dir), FAREGATE_DATABASE_URL=self.database_url,
                   COLUMNS="200")
        return env

    def __call__(self, *args: str, stdin: str | None = None,
                 expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "faregate.cli", *args], input=stdin, env=self.env,
            capture_output=True, text=True, timeout=60, check=False)
        if expect is not None:
            assert done.returncode == expect, (
                f"faregate {' '.join(args)} exited {done.returncode}, expected {expect}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    def json(self, *args: str, stdin: str | None = None) -> Any:
        """Run with --json; exactly one JSON document must come out on stdout."""
        return json.loads(self(*args, "--json", stdin=stdin).stdout)


def make_cli(data_dir: Path, database_url: str) -> Cli:
    cli = Cli(data_dir, database_url)
    out = cli("db", "upgrade").stdout
    assert out.startswith("database at ")
    assert out.rstrip().endswith("is up to date")
    return cli
