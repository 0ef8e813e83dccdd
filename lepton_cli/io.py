"""Every file Lepton writes or loads goes through here.

Writes are atomic (a temp file in the same folder, fsync, rename): a reader, a resumed run or a
crash sees the old file or the whole new one, never half of it, and a failed write (disk full, no
permission) leaves nothing behind and becomes one `LeptonError` naming the file.

Loads never run code: checkpoints are read with `torch.load(weights_only=True)` and pickled data
formats (CIFAR-10's batches) with `restricted_unpickle`, which builds plain containers, strings,
bytes and NumPy arrays and refuses every other global. Torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from lepton_cli.errors import LeptonError


# ---- writing ----------------------------------------------------------------------------------------
class WriteFailed(LeptonError):
    """A write that failed (disk full, no permission, ...); `errno` says why, for callers that can
    carry on without the file (a data cache)."""

    def __init__(self, message: str, errno_code: int | None):
        super().__init__(message)
        self.errno = errno_code


def write_atomically(path: str | Path, data: bytes | str) -> None:
    """Write `data` (bytes or text) to `path` atomically; see the module docstring."""
    path = Path(path)
    data = data.encode() if isinstance(data, str) else data
    write_buffer_atomically(path, lambda handle: _write_all(handle, data, path))


def write_buffer_atomically(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Atomic write of what `write(handle)` puts into the open temp file (np.savez, torch.save...),
    streamed to disk, never held whole in memory."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file gets the usual permissions
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # a full disk often reports only here
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(f"could not write {path}: {describe_os_error(error)}", error.errno) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _write_all(handle: BinaryIO, data: bytes, path: Path) -> None:
    """Write the bytes of `path` (its final name) into the temp file; a seam for disk-full tests."""
    handle.write(data)


def write_json_atomically(path: str | Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2))


def write_text_atomically(path: str | Path, lines: list[str]) -> None:
    write_atomically(path, "\n".join(lines) + "\n")


def describe_os_error(error: OSError) -> str:
    fixes = {
        errno.ENOSPC: "no space left on the device; free some space (or write elsewhere with hydra.run.dir=) "
                      "and continue with resume=",
        errno.EACCES: "permission denied; choose a writable hydra.run.dir",
        errno.EROFS: "the file system is read-only; choose a writable hydra.run.dir",
        errno.ENOTDIR: "a part of the path is a file, not a directory; choose another hydra.run.dir",
        errno.EDQUOT: "disk quota exceeded; free some space and continue with resume=",
        errno.ENAMETOOLONG: "the file name is too long; choose a shorter hydra.run.dir",
    }
    return fixes.get(error.errno, f"{error.strerror or error}; check the path and free space")


# ---- loading ----------------------------------------------------------------------------------------
def safe_torch_load(path: str | Path, what: str) -> Any:
    """`torch.load(weights_only=True)` with one-line errors: a missing file, a file that would
    run code when unpickled (refused, never executed) and an unreadable file each say what to do."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise LeptonError(f"{what} {path} does not exist; give the path of a .ckpt written by lepton train "
                          "(runs/<run>/checkpoints/last.ckpt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # garbage bytes fail in the unpickler too, without a GLOBAL
            raise LeptonError(f"{what} {path} is not a readable checkpoint (UnpicklingError); it may be truncated "
                              "or of another format: give a .ckpt written by lepton train") from None
        first = next((line.strip() for line in str(error).splitlines() if "global" in line.lower()), "")
        raise LeptonError(f"refused to load {what} {path}: it holds Python objects that unpickling would execute, "
                          f"not only weights ({first[:120] or 'UnpicklingError'}); Lepton loads with weights_only=True: "
                          "use a checkpoint written by lepton train and never load files from untrusted sources") from None
    except Exception as error:  # noqa: BLE001 - truncated, not a zip, not a torch file: one answer
        raise LeptonError(f"{what} {path} is not a readable checkpoint ({type(error).__name__}); it may be "
                          "truncated or of another format: give a .ckpt written by lepton train") from None


# The globals a pickled NumPy array needs, and nothing else: no callable that could run code.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """How Python 2 pickles (CIFAR-10's) carry bytes: `_codecs.encode(text, "latin1")`. Only that
    codec: others (zlib, bz2) would let a small file decompress into all the memory there is."""
    if encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"global '_codecs.encode' with codec {encoding!r} is not allowed")
    return text.encode("latin1", errors)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def restricted_unpickle(handle: BinaryIO, what: str, encoding: str = "bytes") -> Any:
    """Unpickle plain containers, str/bytes, numbers and NumPy arrays only; anything else (a
    crafted file that would call a function) is refused with one line, never executed."""
    try:
        return _RestrictedUnpickler(handle, encoding=encoding).load()
    except pickle.UnpicklingError as error:
        if "is not allowed" in str(error):
            raise LeptonError(f"refused to read {what}: it holds Python objects that unpickling would execute "
                              f"({error}); the file is not the data set's original file: download it again") from None
        raise LeptonError(f"{what} is not a readable pickle ({error}); it may be truncated: download it again") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as error:
        raise LeptonError(f"{what} is truncated or corrupt ({type(error).__name__}); download it again") from None


# ---- locks ------------------------------------------------------------------------------------------
LOCK_NAME = ".lepton.lock"


@contextlib.contextmanager
def directory_lock(directory: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (an `flock` on its `.lepton.lock`) while the block
    runs; a second process that tries fails at once with one line. The kernel drops the lock when
    the holder dies, even by SIGKILL, so a stale lock file never blocks anyone."""
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LeptonError(f"{what} {directory} is in use by another Lepton process (it holds {LOCK_NAME}); "
                              "wait for it to finish or stop it, or choose another directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def is_locked(directory: str | Path) -> bool:
    """Whether a live process holds `directory_lock` on `directory` (never blocks)."""
    import fcntl

    path = Path(directory) / LOCK_NAME
    if not path.is_file():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False
