"""Decoders from each data set's official on-disk format to `ImageArrays`.

The layouts are torchvision's, so `root` can be an existing torchvision data root. torchvision is
only used to fetch missing files (`download=True`); decoding is ours, so every data set comes out
the same way: uint8 (N, H, W, C) images, int64 labels and the real class names.
"""

from __future__ import annotations

import bz2
import gzip
import os
import pickle
import re
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.errors import LeptonError

DIGITS = [str(d) for d in range(10)]
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
OFFICE31_DOMAINS = ("amazon", "dslr", "webcam")
OFFICE_HOME_DOMAINS = ("Art", "Clipart", "Product", "Real_World")


# ---------------------------------------------------------------------------------------------
# Shared helpers: finding files, saying what is missing, fetching with torchvision, decoding.


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


def _torchvision_download(dataset: str, root: Path, train: bool) -> None:
    """Let torchvision fetch the official files into `root`, in the layout our readers expect."""
    from torchvision import datasets

    split = "train" if train else "test"
    fetch: dict[str, Callable[[], object]] = {
        "cifar10": lambda: datasets.CIFAR10(root, train=train, download=True),
        "stl10": lambda: datasets.STL10(root, split=split, download=True),
        "mnist": lambda: datasets.MNIST(root, train=train, download=True),
        "usps": lambda: datasets.USPS(root, train=train, download=True),
        "svhn": lambda: datasets.SVHN(root, split=split, download=True),
    }
    root.mkdir(parents=True, exist_ok=True)
    try:
        fetch[dataset]()
    except (OSError, RuntimeError) as error:  # URLError is an OSError; md5 mismatches are RuntimeError
        raise LeptonError(
            f"{dataset}: download into {root} failed ({error}); check the network, "
            "or put the official files there yourself and set data.download=false"
        ) from error


def _require(
    dataset: str,
    root: Path,
    directory: Path,
    names: Sequence[str],
    train: bool,
    download: bool,
    suffixes: Sequence[str] = ("",),
) -> list[Path]:
    """The paths of `names` in `directory`, fetched first with torchvision if asked and missing."""
    found, missing = _find(directory, names, suffixes)
    if missing and download:
        _torchvision_download(dataset, root, train)
        found, missing = _find(directory, names, suffixes)
    if missing:
        raise _missing_error(dataset, directory, missing, downloadable=True)
    return found


def _decode_image(path: Path, size: int | None) -> np.ndarray | Exception:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None:
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as error:  # what PIL raises for broken files
        return error


def _decode_images(paths: Sequence[Path], size: int | None, on_corrupt: str) -> tuple[list[np.ndarray], list[int]]:
    """Decoded RGB images and the indices into `paths` they came from (corrupt ones left out)."""
    if on_corrupt not in ("skip", "error"):
        raise LeptonError(f"on_corrupt must be 'skip' or 'error', got {on_corrupt!r}")
    # PIL releases the GIL while decoding, so threads give a real speed-up on big folders.
    with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
        results = list(pool.map(lambda p: _decode_image(p, size), paths))
    images, kept, corrupt = [], [], []
    for index, result in enumerate(results):
        if isinstance(result, Exception):
            corrupt.append(index)
            if on_corrupt == "error":
                raise LeptonError(
                    f"cannot decode image {paths[index]} ({result}); remove or replace the file, "
                    "or set on_corrupt='skip' to leave corrupt images out"
                )
        else:
            images.append(result)
            kept.append(index)
    if corrupt:
        warnings.warn(
            f"skipped {len(corrupt)} corrupt or unreadable image(s), the first: {paths[corrupt[0]]}",
            stacklevel=3,
        )
    return images, kept


# ---------------------------------------------------------------------------------------------
# One reader per data set: read_X(root, train, download) -> ImageArrays.


def read_cifar10(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """CIFAR-10 from the python pickles in `root/cifar-10-batches-py/`."""
    root = Path(root)
    batches = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    *batch_paths, meta_path = _require(
        "cifar10", root, root / "cifar-10-batches-py", [*batches, "batches.meta"], train, download
    )
    images, labels = [], []
    for path in batch_paths:
        with open(path, "rb") as file:
            batch = pickle.load(file, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(batch["labels"])
    with open(meta_path, "rb") as file:
        classes = list(pickle.load(file, encoding="latin1")["label_names"])
    return ImageArrays(np.ascontiguousarray(np.concatenate(images)), np.asarray(labels), classes)


def read_stl10(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """STL-10's labelled train or test split from `root/stl10_binary/`, at the full 96 px."""
    root = Path(root)
    split = "train" if train else "test"
    images_path, labels_path, names_path = _require(
        "stl10", root, root / "stl10_binary", [f"{split}_X.bin", f"{split}_y.bin", "class_names.txt"], train, download
    )
    # Each image is stored column-major (C, W, H), as MATLAB writes it.
    images = np.fromfile(images_path, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64) - 1
    classes = [line.strip() for line in names_path.read_text().splitlines() if line.strip()]
    return ImageArrays(np.ascontiguousarray(images), labels, classes)


def _read_idx(path: Path, magic: int, header_ints: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise LeptonError(
            f"{path} is not an MNIST IDX file of the expected kind (magic number {found:#x}, "
            f"expected {magic:#x}); replace it with the official file of that name"
        )
    shape = [int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, header_ints + 1)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * header_ints).reshape(shape)


def read_mnist(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """MNIST from the IDX files in `root/MNIST/raw/`, unpacked or still gzipped."""
    root = Path(root)
    prefix = "train" if train else "t10k"
    images_path, labels_path = _require(
        "mnist",
        root,
        root / "MNIST" / "raw",
        [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"],
        train,
        download,
        suffixes=("", ".gz"),
    )
    images = _read_idx(images_path, 0x803, 3)[..., None]
    labels = _read_idx(labels_path, 0x801, 1)
    return ImageArrays(images.copy(), labels.astype(np.int64), list(DIGITS))


def read_usps(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """USPS from the bzip2 LIBSVM text files `root/usps.bz2` (train) and `root/usps.t.bz2` (test)."""
    root = Path(root)
    (path,) = _require("usps", root, root, ["usps.bz2" if train else "usps.t.bz2"], train, download)
    with bz2.open(path, "rb") as file:
        lines = [line for line in file.read().splitlines() if line.strip()]
    labels = [int(float(line.split(None, 1)[0])) - 1 for line in lines]
    # LIBSVM lines are sparse (a left-out index holds 0.0), so place every `index:value` by its
    # line and index; one regex over the whole text is much faster than splitting line by line.
    text = b"\n".join(lines)
    indices = np.array(re.findall(rb"(\d+):", text), dtype=np.int64)
    numbers = np.array(re.findall(rb":(\S+)", text), dtype=np.float64)
    line_of_pair = np.repeat(np.arange(len(lines)), [line.count(b":") for line in lines])
    values = np.zeros((len(lines), 256), dtype=np.float32)
    values[line_of_pair, indices - 1] = numbers
    # The same float32 arithmetic as torchvision, so the uint8 pixels match its USPS exactly.
    images = ((values.reshape(-1, 16, 16, 1) + 1) / 2 * 255).astype(np.uint8)
    return ImageArrays(images, np.asarray(labels), list(DIGITS))


def read_svhn(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """SVHN (cropped digits) from `root/train_32x32.mat` or `root/test_32x32.mat`."""
    from scipy.io import loadmat

    root = Path(root)
    (path,) = _require("svhn", root, root, ["train_32x32.mat" if train else "test_32x32.mat"], train, download)
    mat = loadmat(path)
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)))  # (H, W, C, N) -> (N, H, W, C)
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0  # SVHN writes digit 0 as class 10
    return ImageArrays(images.astype(np.uint8), labels, list(DIGITS))


def read_mnist_m(root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """MNIST-M from the PNG folders and label lists in `root/mnist_m/`. No automatic download."""
    directory = Path(root) / "mnist_m"
    split = "mnist_m_train" if train else "mnist_m_test"
    found, missing = _find(directory, [f"{split}_labels.txt", f"{split}/"])
    if missing:
        raise _missing_error("mnist_m", directory, missing, downloadable=False)
    labels_path, folder = found
    names, labels = [], []
    for line in labels_path.read_text().splitlines():
        if line.strip():
            name, label = line.split()
            names.append(name)
            labels.append(int(label))
    paths = [folder / name for name in names]
    absent = [path for path in paths if not path.exists()]
    if absent:
        raise LeptonError(
            f"mnist_m: {len(absent)} image(s) listed in {labels_path} are missing, the first: {absent[0]}; "
            "unpack the full official archive there"
        )
    images, _ = _decode_images(paths, None, on_corrupt="error")
    return ImageArrays(np.stack(images), np.asarray(labels), list(DIGITS))


# ---------------------------------------------------------------------------------------------
# Class-per-folder trees (Office-31, Office-Home and users' own data).


def read_image_folder(path: str | Path, image_size: int, on_corrupt: str = "skip") -> ImageArrays:
    """Images in `path/<class>/...`, decoded to RGB and resized to `image_size` (bilinear).

    Classes are the sorted sub-folder names. Corrupt files are skipped with one warning
    (`on_corrupt="skip"`) or raise a `LeptonError` naming the file (`on_corrupt="error"`).
    """
    path = Path(path)
    layout = f"expected one sub-folder per class holding its images, e.g. {path}/<class_name>/0001.jpg"
    if not path.is_dir():
        raise LeptonError(f"image folder {path} does not exist; {layout}")
    classes = sorted(child.name for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((path / name).rglob("*")):
            if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file():
                files.append(file)
                labels.append(label)
    if not files:
        raise LeptonError(f"no images found in {path}; {layout}")
    images, kept = _decode_images(files, image_size, on_corrupt)
    if not images:
        raise LeptonError(f"none of the {len(files)} images in {path} could be decoded; replace the files")
    return ImageArrays(np.stack(images), np.asarray(labels)[kept], classes)


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
