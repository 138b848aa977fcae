#!/usr/bin/env python3
"""Produce seeded transaction events to Kafka: `lakehouse produce`, whose code is lakehouse/commands/produce.py."""

import sys

from lakehouse import cli
from lakehouse.commands.produce import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
