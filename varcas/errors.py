"""The one exception type the CLI turns into a one-line message and exit status 2, and the
exit statuses of every command."""

EXIT_FAILED = 1  # the run happened and failed: every request failed, or fail-fast stopped it
EXIT_ERROR = 2  # bad input or setup (VarcasError): nothing was sent
EXIT_INTERRUPTED = 128 + 2  # SIGINT, SIGTERM or SIGHUP: what was recorded is kept
EXIT_BROKEN_PIPE = 128 + 13  # the reader of stdout went away, as for a program killed by SIGPIPE


class VarcasError(Exception):
    """A setup or input error the user can fix: printed as one line, exit status 2."""
