#!/usr/bin/env python3
"""The Beam orchestrator: `lakehouse orchestrate`, whose code is lakehouse/commands/orchestrate.py."""

import sys

from lakehouse import cli
from lakehouse.commands.orchestrate import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
