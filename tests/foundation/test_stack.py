"""The local stack: `make up` is idempotent, docker-compose.yml stays valid and matches the native endpoints."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from support import REPO


def test_second_up_does_nothing_and_says_so() -> None:
    result = subprocess.run(["stack/stack.sh", "up"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "already up; nothing to do" in result.stdout


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_compose_file_is_valid_with_the_same_endpoints() -> None:
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("kafka:", "ksqldb-server:", "ksqldb-init:", "mysql:", "seaweedfs:", "seaweedfs-init:"):
        assert service in config
    assert "image: chrislusf/seaweedfs" in config
    for port in ("9092", "8088", "3306", "8333"):
        assert f"published: {port}" in config or f"127.0.0.1:{port}:{port}" in config
    assert "MYSQL_DATABASE: data_warehouse" in config
    assert "KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false'" in config or 'KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false"' in config
