"""Prometheus metrics: every metric the project exposes, and the /metrics endpoint of --metrics-port.

Each run makes its own registry (not prometheus_client's global one), so a second consumer in the same process
(tests, export's landing) never adds to another run's counters. README "Operating it" lists the metrics.
"""

from __future__ import annotations

import argparse
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from lakehouse import cli
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

log = logging.getLogger(__name__)
disable_created_metrics()  # no *_created series: the counters' start times only double what Prometheus shows

# From a flush of a few records to a 50,000-record landing on a slow disk, or a commit waiting on a busy MySQL.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# An orchestrator task: a retention pass in a second or two, a Beam export of a large backlog in many minutes.
TASK_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Registry:
    """One run's registry and its HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def serve(self, port: int, settings: Settings) -> None:
        """Serve /metrics on LAKEHOUSE_METRICS_ADDR:port until the process exits; port 0: not served."""
        if not port:
            return
        try:
            start_http_server(port, addr=settings.metrics_addr, registry=self.registry)
        except OSError as exc:
            raise LakehouseError(f"cannot serve metrics on {settings.metrics_addr}:{port}: {exc.strerror or exc} "
                                 "(check --metrics-port and LAKEHOUSE_METRICS_ADDR)") from None
        log.info("metrics at http://%s:%d/metrics", settings.metrics_addr, port)


class ConsumerMetrics(Registry):
    """A consumer's records per feed, lag per topic-partition, commits, flush and commit durations."""

    def __init__(self, uses_mysql: bool = False) -> None:
        super().__init__()
        registry = self.registry
        self.consumed = Counter("lakehouse_records_consumed", "Records read from Kafka, per feed (a record read "
                                "again after a rebalance or a restart counts again)", ["feed"], registry=registry)
        self.landed = Counter("lakehouse_records_landed", "Records committed to the sink, per feed: rows in the "
                              "lake, changes applied in MySQL", ["feed"], registry=registry)
        self.quarantined = Counter("lakehouse_records_quarantined", "Records committed to the quarantine, per feed",
                                   ["feed"], registry=registry)
        self.lag = Gauge("lakehouse_consumer_lag_records", "Records after the consumer's position, per "
                         "topic-partition it holds (the partition's high watermark minus the next offset to read)",
                         ["topic", "partition"], registry=registry)
        self.last_commit = Gauge("lakehouse_last_commit_timestamp_seconds",
                                 "Unix time of the last commit of records with their offsets", registry=registry)
        self.flush_seconds = Histogram("lakehouse_flush_duration_seconds", "Landing one batch: quarantine, files "
                                       "or rows, offsets", buckets=DURATION_BUCKETS, registry=registry)
        self.commit_seconds = Histogram("lakehouse_commit_duration_seconds", "The commit step of a flush: the "
                                        "lake's manifests, publish and offsets, or the MySQL transaction",
                                        buckets=DURATION_BUCKETS, registry=registry)
        # Exposed only by a consumer that talks to MySQL: elsewhere a constant 0 would say nothing true.
        self.mysql_retrying = Gauge("lakehouse_mysql_retrying", "1 while MySQL is unreachable and the batch is "
                                    "being retried, else 0", registry=registry if uses_mysql else None)

    def track(self, feeds: list[str]) -> None:
        """Each feed's counters exist from the start, at 0 (a series that appears only later escapes rate())."""
        for feed in feeds:
            for counter in (self.consumed, self.landed, self.quarantined):
                counter.labels(feed)

    def committed(self, flush_seconds: float, commit_seconds: float) -> None:
        """A batch was landed with its offsets."""
        self.flush_seconds.observe(flush_seconds)
        self.commit_seconds.observe(commit_seconds)
        self.last_commit.set_to_current_time()

    def count(self, feed: str, consumed: int = 0, landed: int = 0, quarantined: int = 0) -> None:
        for counter, value in ((self.consumed, consumed), (self.landed, landed), (self.quarantined, quarantined)):
            if value:
                counter.labels(feed).inc(value)


class OrchestratorMetrics(Registry):
    """beam_orchestrator.py --every-minutes: task runs by outcome and their durations."""

    def __init__(self) -> None:
        super().__init__()
        self.task_runs = Counter("lakehouse_task_runs", "Orchestrator task runs, per task and status (ok, failed)",
                                 ["task", "status"], registry=self.registry)
        self.task_seconds = Histogram("lakehouse_task_duration_seconds", "Orchestrator task run durations, per task",
                                      ["task"], buckets=TASK_BUCKETS, registry=self.registry)

    def task_ran(self, task: str, status: str, seconds: float) -> None:
        self.task_runs.labels(task, status).inc()
        self.task_seconds.labels(task).observe(seconds)


def add_port_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=cli.at_least(0, at_most=65535), default=0, metavar="PORT",
                        help="serve Prometheus metrics at http://LAKEHOUSE_METRICS_ADDR:PORT/metrics (address "
                             "default 127.0.0.1; 0, the default: no metrics)")
