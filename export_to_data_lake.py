#!/usr/bin/env python3
"""Export feeds to the data lake in one bounded run: `lakehouse export`, whose code is lakehouse/commands/export.py."""

import sys

from lakehouse import cli
from lakehouse.commands.export import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
