"""Writers of tiny fake data sets in each data set's exact official on-disk format.

Each writer takes the data root, writes one small data set there (the layout torchvision uses) and
returns what it wrote as {"train": ImageArrays, "test": ImageArrays} (or the paths it wrote), so
tests can check that pixels, labels and class names come back exactly. Every writer also puts a
known pixel at an asymmetric position (`MARKER`) in image 1 of the test split, which catches
transposed axes that random content alone might not make obvious.
"""

from __future__ import annotations

import bz2
import gzip
import os
import pathlib
import pickle
import shlex
import struct
import zlib
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays

DIGITS = [str(d) for d in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
# (row, column, channel, value) of the marker pixel in image 1 of each test split.
MARKER = (3, 14, 2, 251)


def _random_split(seed: int, n: int, size: int, channels: int, labels: list[int], classes: list[str]) -> ImageArrays:
    images = np.random.default_rng(seed).integers(0, 200, size=(n, size, size, channels), dtype=np.uint8)
    row, col, channel, value = MARKER
    if n > 1:
        images[1, row, col, min(channel, channels - 1)] = value
    return ImageArrays(images, np.asarray(labels), list(classes))


def write_cifar10(root: Path) -> dict[str, ImageArrays]:
    """12 images: 2 in each of data_batch_1..5 and 2 in test_batch, plus batches.meta."""
    directory = Path(root) / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": _random_split(0, 10, 32, 3, [9, 0, 1, 2, 3, 4, 5, 6, 7, 8], CIFAR10_CLASSES),
        "test": _random_split(1, 2, 32, 3, [3, 8], CIFAR10_CLASSES),
    }
    files = {f"data_batch_{i + 1}": ("train", slice(2 * i, 2 * i + 2)) for i in range(5)}
    files["test_batch"] = ("test", slice(0, 2))
    for name, (split, rows) in files.items():
        part = splits[split]
        # Each row is the 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
        data = part.images[rows].transpose(0, 3, 1, 2).reshape(-1, 3072)
        batch = {"batch_label": name, "data": data, "labels": part.labels[rows].tolist(), "filenames": []}
        (directory / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": 2, "num_vis": 3072}
    (directory / "batches.meta").write_bytes(pickle.dumps(meta))
    return splits


def write_stl10(root: Path) -> dict[str, ImageArrays]:
    """3 train and 2 test images of 96 px; labels stored 1..10; each image column-major."""
    directory = Path(root) / "stl10_binary"
    directory.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": _random_split(2, 3, 96, 3, [0, 9, 4], STL10_CLASSES),
        "test": _random_split(3, 2, 96, 3, [7, 2], STL10_CLASSES),
    }
    for split, part in splits.items():
        # Pixel (row r, column c, channel k) of an image is byte k*96*96 + c*96 + r.
        (directory / f"{split}_X.bin").write_bytes(part.images.transpose(0, 3, 2, 1).tobytes())
        (directory / f"{split}_y.bin").write_bytes((part.labels + 1).astype(np.uint8).tobytes())
    (directory / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")
    return splits


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """An MNIST IDX file: magic number, one big-endian int per dimension, then the uint8 values."""
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, compressed: str = "raw") -> dict[str, ImageArrays]:
    """IDX files in root/MNIST/raw: `compressed` is "raw" (unpacked), "gz" (official .gz only) or "both"."""
    directory = Path(root) / "MNIST" / "raw"
    directory.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": _random_split(4, 4, 28, 1, [5, 0, 4, 1], DIGITS),
        "test": _random_split(5, 3, 28, 1, [7, 2, 1], DIGITS),
    }
    for prefix, part in (("train", splits["train"]), ("t10k", splits["test"])):
        for name, content in (
            (f"{prefix}-images-idx3-ubyte", idx_bytes(0x803, part.images[..., 0])),
            (f"{prefix}-labels-idx1-ubyte", idx_bytes(0x801, part.labels)),
        ):
            if compressed in ("raw", "both"):
                (directory / name).write_bytes(content)
            if compressed in ("gz", "both"):
                (directory / f"{name}.gz").write_bytes(gzip.compress(content))
    return splits


# Grey values as USPS stores them (3 decimals in [-1, 1]) and the uint8 torchvision makes of them.
USPS_VALUES = {-1.0: 0, -0.631: 47, 0.0: 127, 0.5: 191, 1.0: 255}


def write_usps(root: Path) -> dict[str, ImageArrays]:
    """root/usps.bz2 (3 images) and root/usps.t.bz2 (2 images), LIBSVM lines `digit+1 i:v ...`.

    Image 0 of each split is written sparse: pixels equal to 0.0 are left out, as LIBSVM allows.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    values = np.array(list(USPS_VALUES))
    codes = np.array(list(USPS_VALUES.values()), dtype=np.uint8)
    splits = {}
    for split, name, seed, labels in (("train", "usps.bz2", 6, [0, 9, 3]), ("test", "usps.t.bz2", 7, [6, 1])):
        which = np.random.default_rng(seed).integers(0, len(values), size=(len(labels), 16, 16))
        which[1, MARKER[0], MARKER[1]] = 4  # the marker pixel: 1.0 -> 255
        lines = []
        for index, (label, grid) in enumerate(zip(labels, which, strict=True)):
            pixels = values[grid.reshape(-1)]
            pairs = [f"{i + 1}:{v:g}" for i, v in enumerate(pixels) if not (index == 0 and v == 0.0)]
            lines.append(" ".join([str(label + 1), *pairs]))
        (root / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
        splits[split] = ImageArrays(codes[which][..., None], np.asarray(labels), list(DIGITS))
    return splits


def write_svhn(root: Path) -> dict[str, ImageArrays]:
    """root/train_32x32.mat and root/test_32x32.mat: X (32, 32, 3, N), y (N, 1) with 10 for digit 0."""
    from scipy.io import savemat

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": _random_split(8, 3, 32, 3, [0, 1, 9], DIGITS),
        "test": _random_split(9, 2, 32, 3, [5, 0], DIGITS),
    }
    for split, part in splits.items():
        stored = np.where(part.labels == 0, 10, part.labels).astype(np.uint8).reshape(-1, 1)
        savemat(root / f"{split}_32x32.mat", {"X": part.images.transpose(1, 2, 3, 0), "y": stored})
    return splits


def write_mnist_m(root: Path) -> dict[str, ImageArrays]:
    """root/mnist_m/mnist_m_{train,test}/*.png (RGB 28x28) and mnist_m_{train,test}_labels.txt."""
    from PIL import Image

    directory = Path(root) / "mnist_m"
    splits = {
        "train": _random_split(10, 3, 28, 3, [5, 0, 4], DIGITS),
        "test": _random_split(11, 2, 28, 3, [1, 9], DIGITS),
    }
    for split, part in splits.items():
        folder = directory / f"mnist_m_{split}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for index, (image, label) in enumerate(zip(part.images, part.labels, strict=True)):
            Image.fromarray(image, "RGB").save(folder / f"{index:08d}.png")
            lines.append(f"{index:08d}.png {label}")
        (directory / f"mnist_m_{split}_labels.txt").write_text("\n".join(lines) + "\n")
    return splits


# Solid colours survive resizing (and JPEG) unchanged, so the decoded pixels are known.
FOLDER_IMAGES = {
    "back_pack": [("frame_0001.png", (10, 20, 30), (40, 30)), ("frame_0002.JPG", (200, 100, 50), (64, 64))],
    "bike": [("frame_0001.png", (0, 255, 0), (20, 20)), ("frame_0002.bmp", (7, 8, 9), (33, 17))],
}


def write_image_folder(directory: Path, corrupt: bool = True) -> dict[str, object]:
    """A class-per-folder tree with solid-colour images of different sizes and extensions, a text
    file that is not an image and, if `corrupt`, one file with an image name but garbage content.

    Returns {"classes", "labels", "colours"} of the good images in reading order, and "corrupt".
    """
    from PIL import Image

    directory = Path(directory)
    labels, colours = [], []
    for label, (name, files) in enumerate(sorted(FOLDER_IMAGES.items())):
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, colour, size in files:
            Image.new("RGB", size, colour).save(folder / file, quality=100)
            labels.append(label)
            colours.append(colour)
        (folder / "notes.txt").write_text("not an image")
    corrupt_path = directory / "bike" / "frame_0003.jpg"
    if corrupt:
        corrupt_path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return {
        "classes": sorted(FOLDER_IMAGES),
        "labels": labels,
        "colours": colours,
        "corrupt": corrupt_path if corrupt else None,
    }


def write_office31(root: Path, domain: str = "amazon", images_level: bool = True) -> dict[str, object]:
    """An Office-31 domain as the official archive unpacks: root/office31/<domain>/images/<class>/."""
    base = Path(root) / "office31" / domain
    return write_image_folder(base / "images" if images_level else base, corrupt=False)


def write_office_home(root: Path, domain: str = "Art") -> dict[str, object]:
    """An Office-Home domain: root/office_home/<domain>/<class>/."""
    return write_image_folder(Path(root) / "office_home" / domain, corrupt=False)


# ---- hostile and broken files ----------------------------------------------------------------------


class _RunsCode:
    """Pickles as a call to `function(*args)`: what unpickling a crafted file would execute."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def malicious_pickle(marker: Path, via: str = "os.system") -> bytes:
    """A CIFAR-10-shaped batch whose unpickling would create `marker`, by `os.system` or `Path.touch`."""
    calls = {
        "os.system": (os.system, (f"touch {shlex.quote(str(marker))}",)),
        "Path.touch": (pathlib.Path.touch, (pathlib.Path(marker),)),
    }
    return pickle.dumps({"batch_label": "x", "data": _RunsCode(*calls[via]), "labels": [0]})


def rewrite_cifar10_batch(root: Path, name: str, **changes) -> Path:
    """Rewrite one CIFAR-10 batch written by `write_cifar10` with some of its entries changed."""
    path = Path(root) / "cifar-10-batches-py" / name
    batch = pickle.loads(path.read_bytes())  # our own fake, written just before: trusted
    path.write_bytes(pickle.dumps({**batch, **changes}))
    return path


def write_usps_lines(root: Path, name: str, lines: list[str]) -> Path:
    """A USPS file (`usps.bz2` or `usps.t.bz2`) holding exactly these LIBSVM lines."""
    path = Path(root) / name
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, pixels: bool = True) -> bytes:
    """A 1-bit black PNG of width x height. With `pixels` it is a complete, valid image (a few KB
    that decode to width*height pixels: a decompression bomb); without, only its header claims the size."""
    data = b""
    if pixels:
        compressor = zlib.compressobj(9)
        row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the bits of the row
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
