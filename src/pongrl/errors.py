"""User errors: one base class for everything a user can get wrong.

The command line prints a `UserError` as one line and exits with code 2.
Any other exception is a bug, and shows its traceback.
"""


class UserError(Exception):
    """Something a user asked for or gave cannot be done; the message says what, in one line."""


class RunError(UserError):
    """A run (its folder, its Ray cluster) cannot be used as asked."""
