"""Helpers shared by the commands: argument parsing with examples and environment, --version, --log-level,
logging (text or JSON lines), one-line errors."""

from __future__ import annotations

import argparse
import contextvars
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from lakehouse import __version__
from lakehouse.errors import LakehouseError
from lakehouse.settings import environment_help, load_env_file

LOG_FORMAT_VAR = "LAKEHOUSE_LOG_FORMAT"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# The name the user typed, when it is not the script's own (`lakehouse land` for kafka_consumer_datalake.py).
_invoked_as: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("invoked_as", default=None)


class ScriptParser(argparse.ArgumentParser):
    """A command's parser: once its arguments parse, logging is set up from --log-level and LAKEHOUSE_LOG_FORMAT.
    A subcommand may lower the default level with set_defaults(default_log_level="INFO")."""

    def __init__(self, *args: object, default_log_level: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.default_log_level = default_log_level  # None on subcommand parsers: the top parser sets logging up

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if self.default_log_level is not None:
            configure_logging(parsed.log_level or getattr(parsed, "default_log_level", None)
                              or self.default_log_level)
        return parsed, extras


def parser(prog: str, description: str, examples: str, env: Sequence[str] = ("kafka", "ksqldb", "mysql", "lake"),
           log_level: str = "WARNING", version_option: bool = True,
           more_env: Sequence[tuple[str, str]] = ()) -> ScriptParser:
    """A command's parser whose --help ends with usage examples and the environment variables it reads (`env`:
    groups of settings.ENV_GROUPS; `more_env`: its own (variable, what for)); with --version (unless the command
    has its own) and --log-level."""
    invoked = _invoked_as.get()
    if invoked and invoked[0] == prog:
        prog, examples = invoked[1], examples.replace(f"python {prog}", invoked[1])
    created = ScriptParser(
        prog=prog,
        description=description,
        epilog="examples:\n" + examples.strip("\n") + "\n\n" + environment_block(env, more_env),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        default_log_level=log_level,
    )
    if version_option:
        created.add_argument("--version", action="version", version=version_line(prog))
    created.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                         help=f"{', '.join(LOG_LEVELS)} (default {log_level}); logs go to stderr")
    return created


def version_line(prog: str) -> str:
    return f"{prog} {__version__}"


class VersionOrNumber(argparse.Action):
    """For a command whose --version N is its own number (sync_to_mysql.py): --version alone prints the version,
    as it does on every other command."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        if values is None:
            print(version_line(parser.prog))
            parser.exit()
        setattr(namespace, self.dest, values)


def environment_block(groups: Sequence[str], more: Sequence[tuple[str, str]] = ()) -> str:
    """The "environment:" part of a --help: each variable the command reads, what it is for, its default."""
    rows = [*environment_help(groups), *more, (LOG_FORMAT_VAR, "text (default) or json: one JSON object per log line")]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name.ljust(width)}  {text}" for name, text in rows]
    return "\n".join(["environment:", *lines, "  (a .env file in the working directory may set them; "
                                                "the environment wins)"])


@contextmanager
def invoked_as(script: str, command: str) -> Iterator[None]:
    """Within: the parser of `script` shows itself, usage and examples as `command` (e.g. "lakehouse land")."""
    token = _invoked_as.set((script, command))
    try:
        yield
    finally:
        _invoked_as.reset(token)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC), level, logger, message, and the record's extra fields."""

    STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in self.STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Log records of `level` and above to stderr, as text lines or (LAKEHOUSE_LOG_FORMAT=json) JSON lines."""
    load_env_file()
    log_format = os.environ.get(LOG_FORMAT_VAR) or "text"
    if log_format not in ("text", "json"):
        raise LakehouseError(f"{LOG_FORMAT_VAR} must be text or json, got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def csv_list(text: str) -> list[str]:
    """Parse 'a,b' into ['a', 'b'] (for --topics / --feeds)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def at_least(minimum: float, convert: Callable[[str], float] = int,
             at_most: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite number (of `convert`'s kind) from `minimum` to `at_most`."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):  # nan passes every comparison below
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        if value > at_most:
            raise argparse.ArgumentTypeError(f"must be at most {at_most}, got {text}")
        return value
    return parse


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a script's main; a known failure becomes one line on stderr and exit code 2, not a traceback."""
    try:
        return main(argv)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _raised_by(exc, "confluent_kafka", "KafkaException"):
            print(f"error: Kafka: {exc.args[0].str() if exc.args else exc}", file=sys.stderr)
            return 2
        if _raised_by(exc, "mysql.connector", "Error"):
            print(f"error: MySQL: {exc.msg if getattr(exc, 'msg', None) else exc}", file=sys.stderr)
            return 2
        raise


def _raised_by(exc: Exception, module: str, error_class: str) -> bool:
    """Whether `exc` is `module`'s error. Looked up, not imported: a command that never loaded the client library
    cannot have raised its error, and importing it here would cost every command its start-up (mysql.connector
    alone ~0.3 s)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, error_class))
