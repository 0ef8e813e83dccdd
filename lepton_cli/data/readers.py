"""Decoders from each data set's official on-disk format to `ImageArrays`.

The layouts are torchvision's, so `root` can be an existing torchvision data root. torchvision is
only used to fetch missing files (`download=True`); decoding is ours, so every data set comes out
the same way: uint8 (N, H, W, C) images, int64 labels and the real class names.

Files are data, never code: pickles go through `restricted_unpickle`, `.mat` files are read for
their numeric arrays only, and every size, count and label is checked against the format before
it is used, so a truncated, corrupt or crafted file is one `LeptonError` naming the file, never a
traceback, a silently wrapped label or a run that executes what the file says.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import os
import re
import socket
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.errors import LeptonError
from lepton_cli.io import restricted_unpickle

DIGITS = [str(d) for d in range(10)]
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
OFFICE31_DOMAINS = ("amazon", "dslr", "webcam")
OFFICE_HOME_DOMAINS = ("Art", "Clipart", "Product", "Real_World")

DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a stalled network fails in seconds, not minutes
# Far above any official file here (MNIST's largest unpacks to 47 MB): a small archive that
# unpacks past it is a decompression bomb, not a data set.
MAX_UNPACKED_BYTES = 1 << 30
# PIL's own default: an image header claiming more pixels than this is refused before decoding.
MAX_IMAGE_PIXELS = 89_478_485
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


class _CannotOpen(Exception):
    """An image file that could not be opened at all (permissions, I/O): unlike a corrupt one it may
    read fine next time without its size or mtime changing, so a result without it is not cached."""


def _decode_image(path: Path, size: int | None) -> np.ndarray | Exception:
    from PIL import Image

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        return _CannotOpen(error.strerror or str(error))
    with handle:
        try:
            with Image.open(handle) as image:
                # Refused on the header, before decoding allocates width x height pixels.
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    return ValueError(f"its header claims {image.width}x{image.height} pixels, over the "
                                      f"{MAX_IMAGE_PIXELS} pixel limit for decompression bombs")
                image = image.convert("RGB")
                if size is not None:
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
        except Image.UnidentifiedImageError:  # its own message shows the file handle, not the file
            return ValueError("not an image file that PIL can read")
        except Exception as error:  # noqa: BLE001 - a crafted file can make a PIL plugin raise anything
            return error


def _decode_images(paths: Sequence[Path], size: int | None, on_corrupt: str) -> tuple[list[np.ndarray], list[int], int]:
    """Decoded RGB images, the indices into `paths` they came from (corrupt ones left out) and how
    many files could not be opened at all."""
    from PIL import Image

    if on_corrupt not in ("skip", "error"):
        raise LeptonError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
    # PIL releases the GIL while decoding, so threads give a real speed-up on big folders. Its
    # decompression-bomb warning (a header over the limit) becomes an error, so such a file is
    # refused like a corrupt one; the filter is set here, in the thread that waits for the pool.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
            results = list(pool.map(lambda p: _decode_image(p, size), paths))
    images, kept, corrupt, unopened = [], [], [], 0
    for index, result in enumerate(results):
        if isinstance(result, Exception):
            corrupt.append(index)
            unopened += isinstance(result, _CannotOpen)
            if on_corrupt == "error":
                verb = "read" if isinstance(result, _CannotOpen) else "decode"
                raise LeptonError(
                    f"cannot {verb} image {paths[index]} ({_one_line(result)}); remove or replace the file, "
                    "or set on_corrupt='skip' to leave corrupt images out"
                )
        else:
            images.append(result)
            kept.append(index)
    if corrupt:
        warnings.warn(
            f"skipped {len(corrupt)} corrupt or unreadable image(s), the first: {paths[corrupt[0]]} "
            f"({_one_line(results[corrupt[0]], 100)})",
            stacklevel=3,
        )
    return images, kept, unopened


# ---------------------------------------------------------------------------------------------
# One reader per data set: read_X(root, train, download) -> ImageArrays.


def _unpickle(path: Path, what: str) -> object:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        raise _unreadable(path, error) from None
    with handle:
        # latin1: the official batches are Python 2 pickles whose arrays carry their bytes as str.
        return restricted_unpickle(handle, f"{what} {path}", encoding="latin1")


def read_cifar10(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """CIFAR-10 from the python pickles in `root/cifar-10-batches-py/`."""
    root = Path(root)
    *batch_paths, meta_path = _require("cifar10", root, train, download)
    meta = _unpickle(meta_path, "CIFAR-10 meta file")
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, (str, bytes)) for n in names):
        raise _corrupt(meta_path, "is not a CIFAR-10 batches.meta (a dict with a 'label_names' list)")
    classes = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    images, labels = [], []
    for path in batch_paths:
        batch = _unpickle(path, "CIFAR-10 batch")
        data = batch.get("data") if isinstance(batch, dict) else None
        batch_labels = np.asarray(batch.get("labels", []) if isinstance(batch, dict) else [])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise _corrupt(path, "is not a CIFAR-10 batch (a dict with 'data', uint8 rows of 3072 values)")
        if batch_labels.ndim != 1 or batch_labels.dtype.kind not in "iu" or len(batch_labels) != len(data):
            raise _corrupt(path, f"holds {len(data)} images but not {len(data)} integer labels")
        _check_labels(batch_labels, len(classes), path)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return ImageArrays(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), classes)


def read_stl10(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """STL-10's labelled train or test split from `root/stl10_binary/`, at the full 96 px."""
    root = Path(root)
    images_path, labels_path, names_path = _require("stl10", root, train, download)
    image_bytes = 3 * 96 * 96
    try:
        size = images_path.stat().st_size
        if size == 0 or size % image_bytes:
            raise _corrupt(images_path, f"is {size} bytes, not a whole number of 96x96 colour images ({image_bytes} bytes each)")
        # Each image is stored column-major (C, W, H), as MATLAB writes it.
        images = np.fromfile(images_path, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
        labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64) - 1
    except OSError as error:
        raise _unreadable(Path(error.filename or images_path), error) from None
    if len(labels) != len(images):
        raise _corrupt(labels_path, f"holds {len(labels)} labels but {images_path.name} holds {len(images)} images")
    try:
        classes = [line.strip() for line in names_path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise _unreadable(names_path, error) from None
    except UnicodeDecodeError:
        raise _corrupt(names_path, "is not a text file of class names") from None
    if len(classes) < 2:
        raise _corrupt(names_path, f"names {len(classes)} class(es), not STL-10's 10")
    _check_labels(labels, len(classes), labels_path, offset=1)  # stored 1..10
    return ImageArrays(np.ascontiguousarray(images), labels, classes)


def _read_idx(path: Path, magic: int, header_ints: int) -> np.ndarray:
    data = _read_bytes(path)
    header = 4 + 4 * header_ints
    found = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and found != magic:
        raise LeptonError(
            f"{path} is not an MNIST IDX file of the expected kind (magic number {found:#x}, "
            f"expected {magic:#x}); replace it with the official file of that name"
        )
    if len(data) < header:
        raise _corrupt(path, f"is {len(data)} bytes, shorter than an MNIST IDX header")
    shape = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, header_ints + 1)]
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise _corrupt(path, f"holds {len(data) - header} bytes of data but its header says {'x'.join(map(str, shape))} "
                             f"({expected} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """MNIST from the IDX files in `root/MNIST/raw/`, unpacked or still gzipped."""
    root = Path(root)
    images_path, labels_path = _require("mnist", root, train, download)
    images = _read_idx(images_path, 0x803, 3)[..., None]
    labels = _read_idx(labels_path, 0x801, 1).astype(np.int64)
    if len(images) != len(labels):
        raise _corrupt(labels_path, f"holds {len(labels)} labels but {images_path.name} holds {len(images)} images "
                                    "(files of different sets?)")
    _check_labels(labels, len(DIGITS), labels_path)
    return ImageArrays(images.copy(), labels, list(DIGITS))


def _usps_problem(line: bytes) -> str | None:
    """What is wrong with one USPS line, or None: `label index:value ...`, labels 1..10,
    indices 1..256, values in [-1, 1]."""
    label, *pairs = line.split()
    try:
        stored = float(label)
    except ValueError:
        return f"label {label[:20]!r} is not a number"
    if not 1 <= stored <= 10 or stored != round(stored):  # in this order: nan and inf fail the first
        return f"label {label.decode(errors='replace')} is out of range; valid labels are 1..10 (digit + 1)"
    for pair in pairs:
        index, _, value = pair.partition(b":")
        if not index.isdigit() or not 1 <= int(index) <= 256:
            return f"pixel {pair[:20]!r} has an index outside 1..256"
        try:
            number = float(value)
        except ValueError:
            return f"pixel {pair[:20]!r} has no numeric value"
        if not -1.0 <= number <= 1.0:
            return f"pixel {pair[:20]!r} has a value outside [-1, 1]"
    return None


def read_usps(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """USPS from the bzip2 LIBSVM text files `root/usps.bz2` (train) and `root/usps.t.bz2` (test)."""
    root = Path(root)
    (path,) = _require("usps", root, train, download)
    numbered = [(number, line) for number, line in enumerate(_read_bytes(path).splitlines(), 1) if line.strip()]
    if not numbered:
        raise _corrupt(path, "holds no images")
    lines = [line for _, line in numbered]

    def bad_line() -> LeptonError:  # the slow, exact diagnosis, only once a check below has failed
        number, problem = next(((n, p) for n, line in numbered if (p := _usps_problem(line))), (0, "unreadable"))
        return LeptonError(f"{path} line {number}: {problem}; expected LIBSVM lines 'label index:value ...': {REDOWNLOAD}")

    # LIBSVM lines are sparse (a left-out index holds 0.0), so place every `index:value` by its
    # line and index; one regex over the whole text is much faster than splitting line by line.
    text = b"\n".join(lines)
    pairs_per_line = [len(line.split()) - 1 for line in lines]
    try:
        stored = np.array([float(line.split(None, 1)[0]) for line in lines])
        indices = np.array(re.findall(rb"(?<!\S)(\d+):\S", text), dtype=np.int64)
        numbers = np.array(re.findall(rb"(?<!\S)\d+:(\S+)", text), dtype=np.float64)
    except (ValueError, OverflowError):
        raise bad_line() from None
    # Every token but the label is a well-formed pair exactly when the regex found them all.
    if len(indices) != sum(pairs_per_line) or len(numbers) != len(indices):
        raise bad_line()
    if ((stored != np.round(stored)) | (stored < 1) | (stored > 10)).any() or (indices < 1).any() or (indices > 256).any():
        raise bad_line()
    if not (np.abs(numbers) <= 1.0).all():  # also refuses nan
        raise bad_line()
    labels = stored.astype(np.int64) - 1
    line_of_pair = np.repeat(np.arange(len(lines)), pairs_per_line)
    values = np.zeros((len(lines), 256), dtype=np.float32)
    values[line_of_pair, indices - 1] = numbers
    # The same float32 arithmetic as torchvision, so the uint8 pixels match its USPS exactly.
    images = ((values.reshape(-1, 16, 16, 1) + 1) / 2 * 255).astype(np.uint8)
    return ImageArrays(images, labels, list(DIGITS))


def read_svhn(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """SVHN (cropped digits) from `root/train_32x32.mat` or `root/test_32x32.mat`."""
    from scipy.io import loadmat

    root = Path(root)
    (path,) = _require("svhn", root, train, download)
    try:
        with open(path, "rb") as handle:
            # Only the two numeric arrays; struct or cell variables (object arrays) are never built.
            mat = loadmat(handle, variable_names=["X", "y"])
    except PermissionError as error:
        raise _unreadable(path, error) from None
    except Exception as error:  # noqa: BLE001 - scipy raises many types for a file that is not a .mat
        raise _corrupt(path, f"is not a readable MATLAB .mat file ({_one_line(error, 100)})") from None
    images, stored = mat.get("X"), mat.get("y")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise _corrupt(path, "has no uint8 array X of shape (32, 32, 3, N) (the SVHN cropped-digits format)")
    if not isinstance(stored, np.ndarray) or stored.dtype.kind not in "iuf" or stored.size != images.shape[3]:
        raise _corrupt(path, f"has no numeric array y with one label for each of its {images.shape[3]} images")
    stored = stored.reshape(-1)
    if stored.dtype.kind == "f" and not np.array_equal(stored, np.round(stored)):
        raise _corrupt(path, "has labels in y that are not whole numbers")
    stored = stored.astype(np.int64)
    _check_labels(stored - 1, len(DIGITS), path, offset=1)  # stored 1..10
    labels = stored % 10  # SVHN writes digit 0 as class 10
    return ImageArrays(np.ascontiguousarray(np.transpose(images, (3, 0, 1, 2))), labels, list(DIGITS))


def read_mnist_m(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """MNIST-M from the PNG folders and label lists in `root/mnist_m/`. No automatic download."""
    directory = Path(root) / "mnist_m"
    split = "mnist_m_train" if train else "mnist_m_test"
    found, missing = _find(directory, [f"{split}_labels.txt", f"{split}/"])
    if missing:
        raise _missing_error("mnist_m", directory, missing, downloadable=False)
    labels_path, folder = found
    try:
        text = labels_path.read_text()
    except OSError as error:
        raise _unreadable(labels_path, error) from None
    except UnicodeDecodeError:
        raise _corrupt(labels_path, "is not a text file") from None
    names, labels, numbers = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise LeptonError(f"{labels_path} line {number}: expected '<image name> <label>', got {line.strip()[:60]!r}; "
                              "unpack the official MNIST-M archive again")
        if Path(parts[0]).is_absolute() or ".." in Path(parts[0]).parts:
            raise LeptonError(f"{labels_path} line {number}: {parts[0][:60]!r} is outside {folder}; "
                              "unpack the official MNIST-M archive again")
        names.append(parts[0])
        labels.append(int(parts[1]))
        numbers.append(number)
    if not names:
        raise LeptonError(f"{labels_path} lists no images; unpack the official MNIST-M archive again")
    _check_labels(np.asarray(labels), len(DIGITS), labels_path, line_numbers=numbers)
    paths = [folder / name for name in names]
    absent = [path for path in paths if not path.exists()]
    if absent:
        raise LeptonError(
            f"mnist_m: {len(absent)} image(s) listed in {labels_path} are missing, the first: {absent[0]}; "
            "unpack the full official archive there"
        )
    images, _, _ = _decode_images(paths, None, on_corrupt="error")
    odd = next((i for i, image in enumerate(images) if image.shape != images[0].shape), None)
    if odd is not None:
        raise LeptonError(f"mnist_m: {paths[odd]} is {images[odd].shape[1]}x{images[odd].shape[0]} pixels but "
                          f"{paths[0].name} is {images[0].shape[1]}x{images[0].shape[0]}; unpack the official archive again")
    return ImageArrays(np.stack(images), np.asarray(labels), list(DIGITS))


# ---------------------------------------------------------------------------------------------
# Class-per-folder trees (Office-31, Office-Home and users' own data).


def _image_folder_layout(path: Path) -> str:
    return f"expected one sub-folder per class holding its images, e.g. {path}/<class_name>/0001.jpg"


def _cannot_list(folder: Path, error: OSError) -> LeptonError:
    where = Path(error.filename) if error.filename else folder
    return LeptonError(f"cannot read folder {where} ({error.strerror or _one_line(error)}); make it readable "
                       f"(chmod -R u+rX '{where}') or move it out of the data folder")


def image_folder_files(path: str | Path) -> tuple[list[str], list[Path], list[int]]:
    """The classes of a class-per-folder tree (its sorted sub-folder names), its image files in
    reading order and the label of each. A folder that cannot be listed is an error naming it: it
    would otherwise become a class with no images, silently."""
    path = Path(path)
    if not path.is_dir():
        raise LeptonError(f"image folder {path} does not exist; {_image_folder_layout(path)}")
    try:
        classes = sorted(child.name for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError as error:
        raise _cannot_list(path, error) from None

    def refuse(error: OSError) -> None:
        raise _cannot_list(path, error)

    files, labels = [], []
    for label, name in enumerate(classes):
        found = []
        # Not Path.rglob: it skips a folder it cannot read without a word.
        for parent, subfolders, names in os.walk(path / name, onerror=refuse):
            subfolders.sort()
            found.extend(Path(parent) / file for file in names if Path(file).suffix.lower() in IMAGE_EXTENSIONS)
        found = sorted(file for file in found if file.is_file())
        files.extend(found)
        labels.extend([label] * len(found))
    return classes, files, labels


def read_image_folder(path: str | Path, image_size: int, on_corrupt: str = "skip") -> ImageArrays:
    """Images in `path/<class>/...`, decoded to RGB and resized to `image_size` (bilinear).

    Classes are the sorted sub-folder names. Corrupt files are skipped with one warning
    (`on_corrupt="skip"`) or raise a `LeptonError` naming the file (`on_corrupt="error"`). A class
    left with no images is dropped with a warning naming it; fewer than 2 classes is an error.
    The result is marked not cacheable when a file could not be opened (it may be readable later).
    """
    path = Path(path)
    classes, files, labels = image_folder_files(path)
    if not files:
        raise LeptonError(f"no images found in {path}; {_image_folder_layout(path)}")
    images, kept, unopened = _decode_images(files, image_size, on_corrupt)
    if not images:
        raise LeptonError(f"none of the {len(files)} images in {path} could be decoded; replace the files")
    labels = np.asarray(labels, dtype=np.int64)[kept]
    counts = np.bincount(labels, minlength=len(classes))
    if (counts == 0).any():
        empty = [name for name, count in zip(classes, counts, strict=True) if count == 0]
        warnings.warn(f"image folder {path}: class(es) {', '.join(empty)} have no readable images and are left out; "
                      "add images or fix the corrupt ones", stacklevel=2)
        renumber = np.cumsum(counts > 0) - 1
        labels = renumber[labels]
        classes = [name for name, count in zip(classes, counts, strict=True) if count > 0]
    if len(classes) < 2:
        raise LeptonError(f"image folder {path} has images of {len(classes)} class ({', '.join(classes)}); "
                          f"a classifier needs at least 2: {_image_folder_layout(path)}")
    return ImageArrays(np.stack(images), labels, classes, cacheable=unopened == 0)


def _domain_folder(name: str, candidates: Sequence[Path], expected: str) -> Path:
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        raise LeptonError(f"{name}: no folder for this domain; put its class folders in {expected}")
    return folder


def office31_path(root: str | Path, domain: str) -> Path:
    """The class-per-folder directory of an Office-31 domain: `root/office31/<domain>/images`, as
    the official archive unpacks, or `root/office31/<domain>` without the `images/` level."""
    if domain not in OFFICE31_DOMAINS:
        raise LeptonError(f"unknown Office-31 domain {domain!r}; choose one of {', '.join(OFFICE31_DOMAINS)}")
    base = Path(root) / "office31" / domain
    return _domain_folder(
        f"Office-31 {domain}",
        [base / "images", base],
        f"{base}/images/<class>/*.jpg (the official archive's layout) or {base}/<class>/*.jpg",
    )


def office_home_path(root: str | Path, domain: str) -> Path:
    """The class-per-folder directory of an Office-Home domain: `root/office_home/<domain>`
    (`Real_World` is also found under the official archive's name `Real World`)."""
    if domain not in OFFICE_HOME_DOMAINS:
        raise LeptonError(f"unknown Office-Home domain {domain!r}; choose one of {', '.join(OFFICE_HOME_DOMAINS)}")
    base = Path(root) / "office_home"
    return _domain_folder(
        f"Office-Home {domain}",
        [base / domain, base / domain.replace("_", " ")],
        f"{base / domain}/<class>/*.jpg",
    )


READERS: dict[str, Callable[..., ImageArrays]] = {
    "cifar10": read_cifar10,
    "stl10": read_stl10,
    "mnist": read_mnist,
    "usps": read_usps,
    "svhn": read_svhn,
    "mnist_m": read_mnist_m,
}
