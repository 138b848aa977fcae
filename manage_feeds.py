#!/usr/bin/env python3
"""Onboard and manage feeds: `lakehouse feeds`, whose code is lakehouse/commands/feeds.py."""

import sys

from lakehouse import cli
from lakehouse.commands.feeds import main

if __name__ == "__main__":
    sys.exit(cli.run(main))
