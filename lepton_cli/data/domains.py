"""The one registry of data sets that `source=` and `target=` both choose from.

A domain is a small object built from `conf/dataset/<name>.yaml` with `hydra.utils.instantiate`;
`load(split, root)` returns the split decoded to an `ImageArrays`. Decoding happens once: the
result is cached on disk as a compressed `.npz` keyed by the domain's settings, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.errors import LeptonError

SPLITS = ("train", "test")
DIGIT_CLASSES = [str(d) for d in range(10)]


class Domain:
    """A data set with a train and a test split. Subclasses implement `_decode`."""

    def __init__(self, name: str, rename_classes: dict[str, str] | None = None, cache: bool = True):
        self.name = name
        # Canonical class names make class matching across domains one generic mechanism
        # (e.g. CIFAR's "automobile" is STL's "car").
        self.rename_classes = dict(rename_classes or {})
        self.cache = cache

    def cache_key(self) -> dict:
        """Everything that changes the decoded pixels; part of the cache file name."""
        return {"class": type(self).__name__, "name": self.name}

    def load(self, split: str, root: str | Path, download: bool = False, cache_dir: str | Path | None = None) -> ImageArrays:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        cache_file = self._cache_file(split, cache_dir) if self.cache and cache_dir else None
        if cache_file is not None and cache_file.exists():
            arrays = _read_npz(cache_file)
        else:
            arrays = self._decode(split, Path(root).expanduser(), download)
            if cache_file is not None:
                _write_npz_atomically(cache_file, arrays)
        arrays.classes = [self.rename_classes.get(c, c) for c in arrays.classes]
        return arrays

    def _cache_file(self, split: str, cache_dir: str | Path) -> Path:
        digest = hashlib.sha1(json.dumps(self.cache_key(), sort_keys=True).encode()).hexdigest()[:12]
        return Path(cache_dir).expanduser() / f"{self.name}-{split}-{digest}.npz"

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        raise NotImplementedError


class SynthDigits(Domain):
    """Digits rendered from matplotlib's fonts (see `synth_digits.py`); no files needed."""

    def __init__(self, name: str = "synth_digits", train_size: int = 20000, test_size: int = 2000,
                 seed: int = 0, image_size: int = 28, **kwargs):
        super().__init__(name, **kwargs)
        self.sizes = {"train": train_size, "test": test_size}
        self.seed, self.image_size = seed, image_size

    def cache_key(self) -> dict:
        return {**super().cache_key(), "sizes": self.sizes, "seed": self.seed, "image_size": self.image_size, "version": 1}

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from lepton_cli.data.synth_digits import render_digits

        # Different seeds per split so the test images are not copies of training images.
        images, labels = render_digits(self.sizes[split], seed=self.seed * 2 + SPLITS.index(split), image_size=self.image_size)
        return ImageArrays(images, labels, list(DIGIT_CLASSES))


class SklearnDigits(Domain):
    """The 1,797 real 8x8 handwritten digits bundled with scikit-learn, split with a fixed seed."""

    def __init__(self, name: str = "digits", test_fraction: float = 0.3, split_seed: int = 0, **kwargs):
        super().__init__(name, **kwargs)
        self.test_fraction, self.split_seed = test_fraction, split_seed

    def cache_key(self) -> dict:
        return {**super().cache_key(), "test_fraction": self.test_fraction, "split_seed": self.split_seed}

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
        order = np.random.default_rng(self.split_seed).permutation(len(images))
        n_test = int(round(len(images) * self.test_fraction))
        index = order[:n_test] if split == "test" else order[n_test:]
        return ImageArrays(images[index], digits.target[index], list(DIGIT_CLASSES))


class FileDomain(Domain):
    """A data set read from its official files by one of `readers.READERS`."""

    def __init__(self, name: str, reader: str, subdir: str = "", **kwargs):
        super().__init__(name, **kwargs)
        self.reader, self.subdir = reader, subdir

    def cache_key(self) -> dict:
        return {**super().cache_key(), "reader": self.reader}

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from lepton_cli.data.readers import READERS

        return READERS[self.reader](root / self.subdir, train=split == "train", download=download)


class ImageFolderDomain(Domain):
    """Any class-per-folder tree. Without a separate test folder, the whole tree is both the
    (unlabelled) training data and the test set, the usual protocol for Office-31/Office-Home."""

    def __init__(self, name: str = "imagefolder", path: str | None = None, test_path: str | None = None,
                 image_size: int = 224, on_corrupt: str = "skip", layout: str = "plain", **kwargs):
        super().__init__(name, **kwargs)
        self.path, self.test_path, self.image_size = path, test_path, image_size
        self.on_corrupt, self.layout = on_corrupt, layout

    def cache_key(self) -> dict:
        return {**super().cache_key(), "path": self.path, "test_path": self.test_path, "image_size": self.image_size}

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from lepton_cli.data import readers

        if self.path is None:
            raise LeptonError(f"source/target {self.name} needs a folder: add {self.name}.path=/path/to/class_folders")
        folder = self.test_path if split == "test" and self.test_path else self.path
        folder = Path(folder).expanduser()
        if not folder.is_absolute():
            folder = root / folder
        if self.layout == "office31":
            folder = readers.office31_path(folder.parent, folder.name)
        return readers.read_image_folder(folder, self.image_size, on_corrupt=self.on_corrupt)


def _read_npz(path: Path) -> ImageArrays:
    with np.load(path, allow_pickle=False) as data:
        return ImageArrays(data["images"], data["labels"], [str(c) for c in data["classes"]])


def _write_npz_atomically(path: Path, arrays: ImageArrays) -> None:
    """Write to a temp file and rename, so a killed run never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, images=arrays.images, labels=arrays.labels, classes=np.array(arrays.classes))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
