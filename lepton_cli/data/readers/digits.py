"""Readers of the digit data sets, whose classes are the digits 0-9: MNIST (IDX files), USPS
(LIBSVM text), SVHN (MATLAB arrays) and MNIST-M (PNG folders with a label list)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.readers.image_decoding import _decode_images
from lepton_cli.data.readers.official_files import (
    REDOWNLOAD,
    _check_labels,
    _corrupt,
    _find,
    _missing_error,
    _one_line,
    _read_bytes,
    _require,
    _unreadable,
)
from lepton_cli.errors import LeptonError

DIGITS = [str(d) for d in range(10)]


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
