"""A data set's official files: where they are, fetching missing ones with torchvision (each network
wait bounded), reading them (unpacked, size-capped) and the one-line errors for missing, unreadable,
corrupt files and out-of-range labels. Shared by every reader."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import os
import socket
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from lepton_cli.errors import LeptonError

DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a stalled network fails in seconds, not minutes
# Far above any official file here (MNIST's largest unpacks to 47 MB): a small archive that
# unpacks past it is a decompression bomb, not a data set.
MAX_UNPACKED_BYTES = 1 << 30
# A cut-off download keeps its name, so data.download=true would not fetch it again: say delete.
REDOWNLOAD = "the file is truncated, corrupt or not the official one: delete it and download it again"


# ---------------------------------------------------------------------------------------------
# Where each data set's files are: one table, used to find, fetch and fingerprint them.

_LAYOUTS: dict[str, tuple[str, Callable[[bool], list[str]], tuple[str, ...]]] = {
    # reader: (folder under root, file names of a split, suffixes tried in order)
    "cifar10": ("cifar-10-batches-py",
                lambda train: [*([f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]), "batches.meta"],
                ("",)),
    "stl10": ("stl10_binary",
              lambda train: [f"{'train' if train else 'test'}_X.bin", f"{'train' if train else 'test'}_y.bin",
                             "class_names.txt"],
              ("",)),
    "mnist": ("MNIST/raw",
              lambda train: [f"{'train' if train else 't10k'}-images-idx3-ubyte", f"{'train' if train else 't10k'}-labels-idx1-ubyte"],
              ("", ".gz")),
    "usps": ("", lambda train: ["usps.bz2" if train else "usps.t.bz2"], ("",)),
    "svhn": ("", lambda train: ["train_32x32.mat" if train else "test_32x32.mat"], ("",)),
    "mnist_m": ("mnist_m", lambda train: [f"mnist_m_{'train' if train else 'test'}_labels.txt"], ("",)),
}


def files_read(reader: str, root: str | Path, train: bool) -> list[Path]:
    """The files that `READERS[reader](root, train)` would read, those that exist now (no
    download): what a cache of its result must be keyed on. MNIST lists both the unpacked and the
    `.gz` name (an unpacked file that appears is read instead); MNIST-M lists every file of its
    split folder (the label list may name any of them)."""
    folder, names, suffixes = _LAYOUTS[reader]
    directory = Path(root) / folder
    paths = [directory / (name + suffix) for name in names(train) for suffix in suffixes]
    if reader == "mnist_m":
        split_folder = directory / f"mnist_m_{'train' if train else 'test'}"
        for parent, _, files in os.walk(split_folder):
            paths.extend(Path(parent) / name for name in files)
    return [path for path in paths if path.is_file()]



# ---------------------------------------------------------------------------------------------
# Shared helpers: finding files, saying what is missing, fetching with torchvision, checking.


def _missing_error(dataset: str, directory: Path, missing: Sequence[str], downloadable: bool) -> LeptonError:
    fix = (
        "or set data.download=true to fetch them with torchvision"
        if downloadable
        else f"(there is no automatic download for {dataset})"
    )
    return LeptonError(f"{dataset}: missing {', '.join(missing)} in {directory}/. Put the official files there {fix}.")


def _find(directory: Path, names: Sequence[str], suffixes: Sequence[str] = ("",)) -> tuple[list[Path], list[str]]:
    """Each name resolved to the first of `name + suffix` that exists; also the names not found."""
    found, missing = [], []
    for name in names:
        path = next((directory / (name + s) for s in suffixes if (directory / (name + s)).exists()), None)
        if path is None:
            missing.append(" or ".join(name + s for s in suffixes))
        else:
            found.append(path)
    return found, missing


def _one_line(error: BaseException | str, limit: int = 160) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    """A default socket timeout for the block only: urllib (and so torchvision) waits forever without one."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_fetcher(dataset: str, root: Path, train: bool) -> Callable[[], object]:
    """What fetches the official files of `dataset` into `root`, in the layout our readers expect."""
    from torchvision import datasets

    split = "train" if train else "test"
    fetch: dict[str, Callable[[], object]] = {
        "cifar10": lambda: datasets.CIFAR10(root, train=train, download=True),
        "stl10": lambda: datasets.STL10(root, split=split, download=True),
        "mnist": lambda: datasets.MNIST(root, train=train, download=True),
        "usps": lambda: datasets.USPS(root, train=train, download=True),
        "svhn": lambda: datasets.SVHN(root, split=split, download=True),
    }
    return fetch[dataset]


def _torchvision_download(dataset: str, root: Path, train: bool) -> None:
    """Let torchvision fetch the official files into `root`, each network wait bounded."""
    import http.client

    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch = _torchvision_fetcher(dataset, root, train)
        with _network_timeout(DOWNLOAD_TIMEOUT_S):
            fetch()
    # URLError and socket timeouts are OSErrors; torchvision reports failed mirrors and checksum
    # mismatches as RuntimeError; a connection cut mid-body is an http.client error.
    except (OSError, RuntimeError, EOFError, http.client.HTTPException) as error:
        cause = getattr(error, "reason", error)  # a URLError says what went wrong in .reason
        timed_out = isinstance(cause, TimeoutError) or "timed out" in str(cause)
        reason = "timeout" if timed_out else _one_line(cause)
        raise LeptonError(
            f"could not download {dataset} ({reason}); download it by hand into {root} (where its files go: "
            "lepton list source) and set data.download=false"
        ) from None


def _require(dataset: str, root: Path, train: bool, download: bool) -> list[Path]:
    """The paths of the split's files, fetched first with torchvision if asked and missing."""
    folder, names, suffixes = _LAYOUTS[dataset]
    directory = root / folder if folder else root
    found, missing = _find(directory, names(train), suffixes)
    if missing and download:
        _torchvision_download(dataset, root, train)
        found, missing = _find(directory, names(train), suffixes)
    if missing:
        raise _missing_error(dataset, directory, missing, downloadable=True)
    return found


def _unreadable(path: Path, error: OSError) -> LeptonError:
    return LeptonError(f"cannot read {path} ({error.strerror or _one_line(error)}); check that it is a readable file")


def _corrupt(path: Path, problem: str) -> LeptonError:
    return LeptonError(f"{path} {problem}; {REDOWNLOAD}")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, unpacked if it is `.gz` or `.bz2`, at most `MAX_UNPACKED_BYTES`."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after unpacking through it
    except OSError as error:
        raise _unreadable(path, error) from None
    with raw:
        try:
            if path.suffix == ".gz":
                data = gzip.GzipFile(fileobj=raw).read(MAX_UNPACKED_BYTES + 1)
            elif path.suffix == ".bz2":
                data = bz2.BZ2File(raw).read(MAX_UNPACKED_BYTES + 1)
            else:
                data = raw.read()
        except (OSError, EOFError, zlib.error, ValueError) as error:  # bad or cut-off compressed stream
            raise _corrupt(path, f"cannot be unpacked ({_one_line(error)})") from None
    if len(data) > MAX_UNPACKED_BYTES:
        raise _corrupt(path, f"unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB, far more than the data set")
    return data


def _check_labels(labels: np.ndarray, num_classes: int, path: Path, line_numbers: Sequence[int] | None = None,
                  offset: int = 0) -> None:
    """Refuse labels outside 0..num_classes-1 (NumPy indexing would wrap a negative one around to
    the last class). `offset` is what the format adds to a label when storing it."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        first = int(bad[0])
        where = f"line {line_numbers[first]}" if line_numbers is not None else f"entry {first}"
        more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
        raise LeptonError(
            f"{path}: label {int(labels[first]) + offset} at {where} is out of range{more}; valid labels are "
            f"{offset}..{num_classes - 1 + offset} for its {num_classes} classes: {REDOWNLOAD}"
        )
