"""The one base class of bad input (the command line reports it with exit code 2; anything else is a bug)."""

from __future__ import annotations


class StreidError(ValueError):
    """Bad input: a one-line message naming the file, field or value and what was expected."""
