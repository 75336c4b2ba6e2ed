"""`CliError`: the one error every `asinwatch` command raises for a user mistake or an
unreachable dependency; the top-level command prints it as one line and exits with `code`.

Here, not in asinwatch.cli, so that a domain's sub-commands (ingestion.cli) raise it without
importing the command that registers them.
"""

from __future__ import annotations


class CliError(Exception):
    """An error to print as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
