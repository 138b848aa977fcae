#!/usr/bin/env python3
"""Apply retention to the data lake: `lakehouse retention`, whose code is lakehouse/commands/retention.py."""

import sys

from lakehouse import cli
from lakehouse.commands.retention import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
