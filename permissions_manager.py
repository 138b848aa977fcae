#!/usr/bin/env python3
"""Per-folder permissions on the data lake: `lakehouse permissions`, whose code is lakehouse/commands/permissions.py."""

import sys

from lakehouse import cli
from lakehouse.commands.permissions import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
