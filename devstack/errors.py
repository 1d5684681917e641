"""The two ways the stack tool fails; the CLI maps them to exit codes."""

from __future__ import annotations


class StackError(Exception):
    """Something went wrong that the user can fix; the message says how. Exit code 1."""


class UsageError(Exception):
    """Bad input (for example a malformed port variable). Exit code 2, like a CLI usage error."""
