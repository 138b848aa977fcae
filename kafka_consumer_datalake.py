#!/usr/bin/env python3
"""Land Kafka feeds in the data lake: `lakehouse land`, whose code is lakehouse/commands/land.py."""

import sys

from lakehouse import cli
from lakehouse.commands.land import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
