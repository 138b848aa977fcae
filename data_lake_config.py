#!/usr/bin/env python3
"""Lake setup, catalog, ksqlDB, status, query: `lakehouse config`, whose code is lakehouse/commands/config.py."""

import sys

from lakehouse import cli
from lakehouse.commands.config import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
