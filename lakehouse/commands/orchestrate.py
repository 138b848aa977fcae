"""Run the pipeline's jobs as Apache Beam pipelines, every N minutes (schedule) or once (cron)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType

from lakehouse import cli, metrics
from lakehouse.errors import LakehouseError

EXAMPLES = """
  python beam_orchestrator.py --task all --every-minutes 10            # the scheduler, until Ctrl-C
  python beam_orchestrator.py --task all --every-minutes 10 --metrics-port 9402   # and Prometheus metrics
  python beam_orchestrator.py --task all --once                        # one tick (for cron)
  python beam_orchestrator.py --task kafka_produce --once --messages 100000 --shards 8
  python beam_orchestrator.py --task all --once -- --direct_running_mode=multi_processing --direct_num_workers=2
  python beam_orchestrator.py --task compact --once                    # merge small files of closed stream days
  python beam_orchestrator.py --history                                # the last runs
  crontab: */10 * * * * cd /srv/lakehouse && .venv/bin/python beam_orchestrator.py --task all --once
"""
TASK_CHOICES = ("export_datalake", "sync_warehouse", "kafka_produce", "retention", "compact", "all")
MIN_EVERY_MINUTES = 0.1  # ticks closer than 6 s would run back to back: a spin, not a schedule
BEAM_OPTIONS = "Beam pipeline options go after --, e.g. -- --direct_num_workers=2"


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("beam_orchestrator.py", __doc__ + "\n" + BEAM_OPTIONS, EXAMPLES,
                        env=("kafka", "ksqldb", "mysql", "lake", "metrics"),
                        log_level="ERROR")  # Beam logs optional-dependency warnings at import
    parser.add_argument("--task", choices=TASK_CHOICES)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--every-minutes", type=cli.at_least(MIN_EVERY_MINUTES, float), metavar="N",
                      help=f"run a tick now, then every N minutes (at least {MIN_EVERY_MINUTES})")
    when.add_argument("--once", action="store_true", help="run one tick and exit (cron)")
    parser.add_argument("--runner", help="Beam runner (default DirectRunner)")
    parser.add_argument("--history", action="store_true", help="print the last runs and exit")
    parser.add_argument("--limit", type=int, default=20, help="runs shown by --history (default 20)")
    parser.add_argument("--ticks", type=int, help="with --every-minutes: stop after this many ticks")
    metrics.add_port_option(parser)
    produce = parser.add_argument_group("kafka_produce")
    produce.add_argument("--messages", type=int, default=1000, help="events per tick (default 1000)")
    produce.add_argument("--shards", type=int, default=4, help="shards produced in parallel (default 4)")
    produce.add_argument("--seed", type=int, help="fixed seed (default: a new one each tick)")
    produce.add_argument("--users", type=int, default=100)
    produce.add_argument("--days", type=int, default=1, help="spread event times over the last D days")
    produce.add_argument("--no-derive", action="store_true",
                         help="do not run the ksqlDB stand-in (when a real ksqlDB derives the feeds)")
    own_args, beam_args = _split_at_double_dash(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(own_args)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} ({BEAM_OPTIONS})")
    if not args.history and (args.task is None or not (args.once or args.every_minutes)):
        parser.error("give --task and one of --once / --every-minutes (or --history)")
    if args.metrics_port and not args.every_minutes:
        parser.error("--metrics-port needs --every-minutes (a scheduler that keeps running to be scraped)")

    from lakehouse.catalog import FeedCatalog
    from lakehouse.orchestration import schedule
    from lakehouse.settings import load_settings
    from lakehouse.storage import LakeStorage
    from lakehouse.text_table import render

    settings = load_settings()
    storage = LakeStorage(settings.data_lake_root)
    if args.history:
        runs = schedule.history(storage, args.limit)
        print(render(["started", "ended", "task", "status", "rows", "error"],
                     [[r.started_at, r.ended_at, r.task, r.status, r.rows, r.error] for r in runs])
              if runs else "no runs recorded yet")
        return 0

    pipelines = _beam_pipelines()
    FeedCatalog(storage).init()  # idempotent: a fresh lake gets its layout and built-in feeds
    spec = pipelines.ProduceSpec(messages=args.messages, shards=args.shards, seed=args.seed, users=args.users,
                                 days=args.days, derive=not args.no_derive)
    runner = pipelines.task_runner(settings, args.runner, beam_args, spec)
    tasks = schedule.tasks_for(args.task)
    with schedule.exclusive_run(storage):
        if args.once:
            records = schedule.run_tick(storage, tasks, runner)
            return 0 if all(record.status == "ok" for record in records) else 1
        registry = metrics.OrchestratorMetrics()
        registry.serve(args.metrics_port, settings)
        ticks = schedule.run_every(args.every_minutes,
                                   lambda: schedule.run_tick(storage, tasks, runner, on_run=registry.task_ran),
                                   args.ticks)
        print(f"scheduler stopped after {ticks} tick(s)")
        return 0


def _split_at_double_dash(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the orchestrator's own arguments, Beam's pipeline options: those after --)."""
    args = list(argv)
    if "--" not in args:
        return args, []
    cut = args.index("--")
    return args[:cut], args[cut + 1:]


def _beam_pipelines() -> ModuleType:
    """lakehouse.orchestration.pipelines, or one line saying how to install Apache Beam (an optional extra)."""
    try:
        from lakehouse.orchestration import pipelines
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("apache_beam"):
            raise
        raise LakehouseError("Apache Beam is not installed; the orchestrator needs it: "
                             "pip install 'lakehouse[beam]' (or pip install -r requirements-beam.txt)") from None
    return pipelines
