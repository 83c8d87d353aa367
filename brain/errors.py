"""Every error brain shows a person: its exit code (sysexits, DESIGN.md) and the next step.

This module owns the exception hierarchy and nothing else; it imports nothing from brain.
`brain.cli.main` is the one place that turns these into a message on stderr and an exit code.
"""

from __future__ import annotations

OK = 0
USAGE = 2
DATAERR = 65  # bad input
UNAVAILABLE = 69  # nothing reachable could answer; the input is kept in the queue
SOFTWARE = 70  # a bug in brain itself
IOERR = 74  # brain could not write its own files or its output (disk full, read-only, damaged)
TEMPFAIL = 75  # rate limited or a passing failure: try again later
NOPERM = 77  # key rejected or missing
CONFIG = 78  # configuration error
INTERRUPTED = 130


class BrainError(Exception):
    """An error with a sentence for the user (`message`) and what to do next (`fix`)."""

    exit_code: int = SOFTWARE

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n{self.fix}"


class UsageError(BrainError):
    exit_code = USAGE


class BadInput(BrainError):
    exit_code = DATAERR


class Unreachable(BrainError):
    """Nothing that may answer this task could be reached; the input stays in the queue."""

    exit_code = UNAVAILABLE


class NotInstalled(BrainError):
    """A program brain hands over to (Claude Code) is not installed."""

    exit_code = UNAVAILABLE


class TemporaryFailure(BrainError):
    exit_code = TEMPFAIL


class KeyProblem(BrainError):
    exit_code = NOPERM


class ConfigError(BrainError):
    exit_code = CONFIG


class Interrupted(BrainError):
    """Ctrl-C, SIGTERM or SIGHUP (a closed terminal). `started` says whether any of the answer
    had arrived (then it was kept); the exit code is 128 + the signal's number."""

    exit_code = INTERRUPTED
    started = True


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is (as Ctrl-C raises KeyboardInterrupt), so
    that every place that keeps a partial answer on Ctrl-C keeps it on these too."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name


class StorageError(BrainError):
    """brain could not read or write its own files (brain.db, config, cache): a full disk, a
    read-only directory, a damaged database (74), or one locked by another program (75).
    `cause` is the short phrase ("the disk is full"); the message says what was kept."""

    exit_code = IOERR

    def __init__(self, message: str, fix: str | None = None, *, cause: str = "") -> None:
        super().__init__(message, fix)
        self.cause = cause or message


class OutputError(BrainError):
    """stdout could not be written (closed, a full disk, a terminal that went away)."""

    exit_code = IOERR


class PipeClosed(BrainError):
    """The reader of stdout went away (`brain ... | head`): stop quietly, exit 0."""

    exit_code = OK


class BackendError(BrainError):
    """A backend answered, but not with an answer (5xx, garbage, a stream cut before its start).

    `fallback_ok` says whether the ladder may try the next backend: true only when nothing of
    the answer reached the user yet.
    """

    exit_code = UNAVAILABLE

    def __init__(
        self,
        message: str,
        fix: str | None = None,
        *,
        reason: str = "",
        fallback_ok: bool = True,
        exit_code: int | None = None,
        transport: bool = False,
    ) -> None:
        super().__init__(message, fix)
        self.reason = reason or message
        self.fallback_ok = fallback_ok
        # True when the host itself could not be reached (refused, DNS, connect timeout): then
        # it is away for every route, not just this one.
        self.transport = transport
        self.detail = self.reason  # the bare phrase ("connection refused"), without the host
        self.timeout = False  # the failure was a timeout (may be remembered for a few seconds)
        self.too_long = False  # the model said the input does not fit its context
        if exit_code is not None:
            self.exit_code = exit_code
