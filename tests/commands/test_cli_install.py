"""`pip install .`: the wheel brings its runtime dependencies and the `lakehouse` command; Beam is an extra (issue 18).

The wheel is installed into a fresh venv with nothing else in it (no system site-packages, no local wheels), so a
dependency missing from the package's metadata fails here. pip's cache keeps a rerun fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

import lakehouse
from lakehouse.commands.dispatch import COMMANDS

PACKAGE_FILES = ("pyproject.toml", "requirements.txt", "requirements-beam.txt")


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    output = f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{command} exited {result.returncode}\n{output}"
    return result


@pytest.mark.install
def test_the_wheel_installs_the_lakehouse_command_and_its_dependencies(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building in the repository would leave build/ and *.egg-info there
    shutil.copytree(REPO / "lakehouse", source / "lakehouse", ignore=shutil.ignore_patterns("__pycache__"))
    for name in PACKAGE_FILES:
        shutil.copy(REPO / name, source / name)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet")
    _run(*pip, "wheel", "--no-deps", "--wheel-dir", tmp_path / "dist", source, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("lakehouse-*.whl"))
    assert wheel.name == f"lakehouse-{lakehouse.__version__}-py3-none-any.whl"

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    _run(*pip, "--python", venv / "bin/python", "install", "--no-compile", wheel, cwd=tmp_path)

    # The installed command, from a folder without the repository: nothing of it is on the path.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(DATA_LAKE_ROOT=str(tmp_path / "lake"), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    command = venv / "bin/lakehouse"
    assert _run(command, "--version", cwd=tmp_path, env=env).stdout == f"lakehouse {lakehouse.__version__}\n"
    _run(command, "config", "init", cwd=tmp_path, env=env)
    shown = _run(command, "config", "show", cwd=tmp_path, env=env).stdout
    assert "transaction_stream " in shown and "product_purchase_counts " in shown

    # Every command imports with the runtime dependencies alone; only the orchestrator's run needs Beam.
    modules = ", ".join(f"lakehouse.commands.{name}" for name in COMMANDS)
    _run(venv / "bin/python", "-c", f"import {modules}", cwd=tmp_path, env=env)
    orchestrate = subprocess.run([command, "orchestrate", "--task", "all", "--once"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=120)
    assert (orchestrate.returncode, orchestrate.stderr) == (2, "error: Apache Beam is not installed; the orchestrator "
                                                               "needs it: pip install 'lakehouse[beam]' (or pip "
                                                               "install -r requirements-beam.txt)\n")
