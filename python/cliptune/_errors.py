"""The exceptions cliptune raises; each carries the engine's own message (naming the file,
tensor, field or step involved)."""


class Error(Exception):
    """Any error cliptune reports (device, limits, non-finite losses, corrupt files, ...).

    ``except cliptune.Error`` also catches the two subclasses below."""


class InvalidValueError(Error, ValueError):
    """A bad argument or input: an unknown option value, an array of the wrong dtype or
    shape, data the CLI would refuse."""


class NotFoundError(Error, FileNotFoundError):
    """A file or directory that does not exist."""
