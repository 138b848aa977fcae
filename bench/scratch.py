"""What the whole-process benches share: a scratch database, a topic prefix, the environment of a script run."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mysql.connector

from lakehouse.kafka import clients
from lakehouse.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def scratch_database(settings: Settings) -> Iterator[str]:
    """A fresh warehouse database, dropped afterwards."""
    name = f"{settings.mysql_database}_bench_{uuid.uuid4().hex[:8]}"
    params = {**settings.mysql_params(), "database": None}
    with mysql.connector.connect(**params) as admin:
        admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield name
    finally:
        with mysql.connector.connect(**params) as admin:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


@contextmanager
def topic_prefix(settings: Settings, name: str) -> Iterator[str]:
    """A topic prefix of the bench's own; every topic under it is deleted afterwards."""
    prefix = f"bench_{name}_{uuid.uuid4().hex[:8]}_"
    try:
        yield prefix
    finally:
        topics = clients.admin_client(settings).list_topics(timeout=clients.CONNECT_TIMEOUT_S).topics
        clients.delete_topics(settings, [topic for topic in topics if topic.startswith(prefix)])


def script_env(settings: Settings, lake: str, prefix: str, database: str | None = None) -> dict[str, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "DATA_LAKE_ROOT": lake,
           "LAKEHOUSE_TOPIC_PREFIX": prefix, "KSQLDB_URL": "http://127.0.0.1:9"}
    if database:
        env["MYSQL_DATABASE"] = database
    return env


@dataclass(frozen=True)
class Timing:
    wall_s: float  # interpreter start-up to exit
    cpu_s: float  # user + system CPU of the process: what a loaded machine does not inflate


def run_script(env: dict[str, str], script: str, *args: str) -> Timing:
    """One whole script process, which must succeed; call it from one thread at a time (children's CPU)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, env=env, capture_output=True,
                            text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Timing(elapsed, cpu)
