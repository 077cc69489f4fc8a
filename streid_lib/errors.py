"""The one base class of bad input.

Every error that a user's input can cause (a file, a field, an option, a value) is a :class:`StreidError` whose
message is one line naming what is wrong and what was expected. The command line reports it as ``error: …`` with exit
code 2; any other exception is a bug (exit code 1).
"""

from __future__ import annotations


class StreidError(ValueError):
    """Bad input: a one-line message naming the file, field or value and what was expected."""
