"""The one exception type the scripts turn into a clear one-line message and a non-zero exit code."""


class LakehouseError(Exception):
    """A problem the user can act on (bad configuration, unreachable service, invalid input)."""
