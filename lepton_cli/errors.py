"""The one exception type for mistakes a user can make, and the one boundary that shows it.

Every entry point runs inside the boundary (`error_boundary()` around a block, or a command's
`main` decorated with `@one_line_errors`): a `LeptonError` (also one raised in a constructor that
Hydra called) becomes one line on stderr and its exit code; everything else is a bug and keeps its
traceback. `LEPTON_DEBUG=1` shows the traceback of a `LeptonError` too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator


class LeptonError(Exception):
    """A problem the user can fix. The message says what is wrong and how to fix it."""

    exit_code = 2


def as_lepton_error(error: BaseException) -> LeptonError | None:
    """The `LeptonError` that `error` is or wraps (Hydra's InstantiationException chains the one a
    constructor raised as its cause), if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, LeptonError):
            return seen
        seen = seen.__cause__
    return None


def _report(error: BaseException) -> int | None:
    """Print a user's mistake as one line and return its exit code; None when it is not one."""
    ours = as_lepton_error(error)
    if ours is None or os.environ.get("LEPTON_DEBUG") == "1":
        return None
    print(f"lepton: error: {ours}", file=sys.stderr)
    return ours.exit_code


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Turn a user's mistake inside the block into one line on stderr and `SystemExit(exit_code)`."""
    try:
        yield
    except Exception as error:
        code = _report(error)
        if code is None:
            raise
        raise SystemExit(code) from None


def one_line_errors(main: Callable[..., int]) -> Callable[..., int]:
    """A command's `main` that returns the exit code of a user's mistake after printing it."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except Exception as error:
            code = _report(error)
            if code is None:
                raise
            return code
    return wrapper
