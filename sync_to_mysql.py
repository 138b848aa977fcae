#!/usr/bin/env python3
"""Load table snapshots into the MySQL warehouse: `lakehouse sync`, whose code is lakehouse/commands/sync.py."""

import sys

from lakehouse import cli
from lakehouse.commands.sync import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
