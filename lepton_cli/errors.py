"""The one exception type for mistakes a user can make.

The CLI turns a `LeptonError` into one line on stderr and exit code 2; everything else is a bug
and keeps its traceback.
"""


class LeptonError(Exception):
    """A problem the user can fix. The message says what is wrong and how to fix it."""

    exit_code = 2
