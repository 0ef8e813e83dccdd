"""Class-per-folder trees (Office-31, Office-Home and users' own data): listing their images,
reading them with their classes, and finding an Office domain's folder under the data root."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.readers.image_decoding import _decode_images
from lepton_cli.data.readers.official_files import _one_line
from lepton_cli.errors import LeptonError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
OFFICE31_DOMAINS = ("amazon", "dslr", "webcam")
OFFICE_HOME_DOMAINS = ("Art", "Clipart", "Product", "Real_World")


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
    labels, classes = _classes_with_images(path, classes, np.asarray(labels, dtype=np.int64)[kept])
    return ImageArrays(np.stack(images), labels, classes, cacheable=unopened == 0)


def list_image_folder(path: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The files, labels and classes `read_image_folder` would decode, listed without decoding
    (data/streaming.py reads them later): the same classes and label numbers when every file is
    readable."""
    path = Path(path)
    classes, files, labels = image_folder_files(path)
    if not files:
        raise LeptonError(f"no images found in {path}; {_image_folder_layout(path)}")
    labels, classes = _classes_with_images(path, classes, np.asarray(labels, dtype=np.int64))
    return files, labels, classes


def _classes_with_images(path: Path, classes: list[str], labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Leave out (with a warning) the classes no image is labelled with, renumbering the labels; a
    classifier needs at least 2 classes left."""
    counts = np.bincount(labels, minlength=len(classes))
    if (counts == 0).any():
        empty = [name for name, count in zip(classes, counts, strict=True) if count == 0]
        warnings.warn(f"image folder {path}: class(es) {', '.join(empty)} have no readable images and are left out; "
                      "add images or fix the corrupt ones", stacklevel=3)
        renumber = np.cumsum(counts > 0) - 1
        labels = renumber[labels]
        classes = [name for name, count in zip(classes, counts, strict=True) if count > 0]
    if len(classes) < 2:
        raise LeptonError(f"image folder {path} has images of {len(classes)} class ({', '.join(classes)}); "
                          f"a classifier needs at least 2: {_image_folder_layout(path)}")
    return labels, classes


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
