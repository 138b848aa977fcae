"""Helpers shared by the top-level scripts: argument parsing with examples, one-line errors."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

import mysql.connector
from confluent_kafka import KafkaException

from lakehouse.errors import LakehouseError


def parser(prog: str, description: str, examples: str) -> argparse.ArgumentParser:
    """An argparse parser whose --help ends with usage examples."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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
    except KafkaException as exc:
        print(f"error: Kafka: {exc.args[0].str() if exc.args else exc}", file=sys.stderr)
        return 2
    except mysql.connector.Error as exc:
        print(f"error: MySQL: {exc.msg if getattr(exc, 'msg', None) else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
