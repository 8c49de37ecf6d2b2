"""Expected failures: each is printed as one line and ends the program with its exit code."""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    """A failure a person can act on; the message is the whole story (no traceback)."""

    exit_code: ClassVar[int] = EXIT_UNAVAILABLE


class UsageError(CliError):
    """Bad options or input: nothing was sent."""

    exit_code = EXIT_USAGE


class NotFound(CliError):
    """The read API does not know the id."""

    exit_code = EXIT_REJECTED


class Refused(CliError):
    """The system answered no (a ``CommandRejected``, or a step that did not happen)."""

    exit_code = EXIT_REJECTED


class Unavailable(CliError):
    """Kafka or a service cannot be reached, or no answer came in time."""

    exit_code = EXIT_UNAVAILABLE
