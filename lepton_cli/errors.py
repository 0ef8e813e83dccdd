"""The one exception type for mistakes a user can make, and the one boundary that shows it.

Every entry point runs inside `error_boundary()`: a `LeptonError` (also one raised in a
constructor that Hydra called) becomes one line on stderr and its exit code; everything else is a
bug and keeps its traceback. `LEPTON_DEBUG=1` shows the traceback of a `LeptonError` too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


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


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Turn a user's mistake into `lepton: error: ...` on stderr and `SystemExit(exit_code)`."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - anything that is not ours is re-raised below
        ours = as_lepton_error(error)
        if ours is None or os.environ.get("LEPTON_DEBUG") == "1":
            raise
        print(f"lepton: error: {ours}", file=sys.stderr)
        raise SystemExit(ours.exit_code) from None
