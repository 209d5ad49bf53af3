"""The one exception type the CLI turns into a one-line message and exit status 2."""


class VarcasError(Exception):
    """A setup or input error the user can fix: printed as one line, exit status 2."""
