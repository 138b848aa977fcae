"""Helpers for tests that drive the real scripts against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses: topics, groups and databases are shared by the stack."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def run_script(script: str, *args: str, env: dict[str, str], timeout: float = 300,
               check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a top-level script as a user would, with the given environment."""
    result = subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
    return result


def base_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "MYSQL_", "KSQLDB_"))}
    env.pop("DATA_LAKE_ROOT", None)
    env.update(overrides)
    return env
