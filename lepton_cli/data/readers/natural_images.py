"""Readers of the natural-image data sets: CIFAR-10 (Python pickles, read through
`restricted_unpickle`) and STL-10 (raw binary arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.readers.official_files import _check_labels, _corrupt, _require, _unreadable
from lepton_cli.io import restricted_unpickle


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
