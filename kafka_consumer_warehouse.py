#!/usr/bin/env python3
"""The warehouse consumer: `lakehouse warehouse`, whose code is lakehouse/commands/warehouse.py."""

import sys

from lakehouse import cli
from lakehouse.commands.warehouse import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
