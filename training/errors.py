"""Exception types, each carrying the CLI exit code it maps to.

Exit codes: 0 ok, 1 internal error, 2 bad input, 3 diverged run, 4 some runs of a batch failed (the
others were done), 130 interrupted (Ctrl-C).
"""


class LandscapeError(Exception):
    """Base class of the toolkit's own errors. The message is one line naming the problem.

    ``param`` names the library parameter (or dotted config key) the message is about, e.g.
    ``"points"`` or ``"schedule.epochs"``; the message spells it the same way, so a command line can
    show its own flag (``--points``) in its place.
    """

    exit_code = 1

    def __init__(self, message: str = "", *, param: str | None = None):
        super().__init__(message)
        self.param = param


class UserError(LandscapeError):
    """Bad input: a wrong path, value, file or configuration (exit code 2)."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration value, key or type is invalid."""


class DataError(UserError):
    """A dataset is missing, empty or malformed."""


class CheckpointError(UserError):
    """A file is not a readable landscape checkpoint, or two checkpoints do not match."""


class DivergedError(LandscapeError):
    """Training produced a non-finite loss (exit code 3)."""

    exit_code = 3


class PartialFailure(LandscapeError):
    """Some runs of a batch failed; every other run was done and written (exit code 4)."""

    exit_code = 4


class Interrupted(LandscapeError):
    """Ctrl-C: the message says what was kept and how to go on (exit code 130)."""

    exit_code = 130
