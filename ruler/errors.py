"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""


class RulerError(Exception):
    """Bad input or missing data, reported to the user as one line (exit code 2)."""
