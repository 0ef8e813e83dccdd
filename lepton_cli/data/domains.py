"""The one registry of data sets that `source=` and `target=` both choose from.

A domain is a small object built from `conf/dataset/<name>.yaml` with `hydra.utils.instantiate`;
`load(split, root)` returns the split decoded to an `ImageArrays`. Decoding happens once: the
result is cached on disk as an `.npz` named by the domain's settings and, for a domain that reads
files, holding the name, size and mtime of each file it read. A cache whose files changed since
(edited, added, removed) is decoded again with one warning that says so; one that depended on
files that could not be opened is never written; a cache that cannot be written (full disk) is a
warning, not a failed run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.data.streaming import ImageFiles
from lepton_cli.errors import LeptonError
from lepton_cli.io import WriteFailed, write_buffer_atomically

SPLITS = ("train", "test")
DIGIT_CLASSES = [str(d) for d in range(10)]


class Domain:
    """A data set with a train and a test split. Subclasses implement `_decode`."""

    #: whether `_decode` reads files under `data.root` (then the root is part of the cache key)
    reads_files = False

    def __init__(self, name: str, rename_classes: dict[str, str] | None = None, cache: bool = True):
        self.name = name
        # Canonical class names make class matching across domains one generic mechanism
        # (e.g. CIFAR's "automobile" is STL's "car").
        self.rename_classes = dict(rename_classes or {})
        self.cache = cache

    def cache_key(self) -> dict:
        """Everything that changes the decoded pixels; part of the cache file name."""
        return {"class": type(self).__name__, "name": self.name}

    def files_read(self, split: str, root: Path) -> list[Path] | None:
        """The files `_decode` would read for `split`, with the folder their names are relative to
        in the cache record (`files_base`); None for a domain that reads no files."""
        return None

    def files_base(self, split: str, root: Path) -> Path:
        """The folder that the names in the cache record are relative to."""
        return root

    def image_files(self, split: str, root: Path) -> ImageFiles | None:
        """The split listed but not decoded, for reading from disk while training
        (data/streaming.py); None for a data set that only exists in memory."""
        return None

    def load(self, split: str, root: str | Path, download: bool = False, cache_dir: str | Path | None = None) -> ImageArrays:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(root).expanduser()
        cache_dir = _usable_cache_dir(cache_dir) if self.cache and cache_dir else None
        cache_file = self._cache_file(split, cache_dir, root) if cache_dir is not None else None
        record = self._files_record(split, root) if cache_file is not None else None
        arrays = _read_cache(cache_file, record, f"{self.name} ({split})") if cache_file is not None else None
        if arrays is None:
            arrays = self._decode(split, root, download)
            # Not cached when the decoder skipped files it could not open, or when the files changed
            # while it read them (or were downloaded): the record would not describe what was read.
            if cache_file is not None and arrays.cacheable and record == self._files_record(split, root):
                _write_cache(cache_file, arrays, record)
        arrays.classes = [self.rename_classes.get(c, c) for c in arrays.classes]
        return arrays

    def _files_record(self, split: str, root: Path) -> list[str] | None:
        files = self.files_read(split, root)
        return None if files is None else _files_record(self.files_base(split, root), files)

    def _cache_file(self, split: str, cache_dir: Path, root: Path) -> Path:
        key = self.cache_key()
        if self.reads_files:  # another data.root holds other files: never reuse their decoding
            key["root"] = str(root.resolve())
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        # The name may come from a shared config: as a file name it never leaves the cache folder.
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name).lstrip(".") or "data"
        return cache_dir / f"{safe_name}-{split}-{digest}.npz"

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
        n_test = round(len(images) * self.test_fraction)
        index = order[:n_test] if split == "test" else order[n_test:]
        return ImageArrays(images[index], digits.target[index], list(DIGIT_CLASSES))


class FileDomain(Domain):
    """A data set read from its official files by one of `readers.READERS`, under
    `data.root/subdir` in the layout torchvision uses (so a torchvision data root works as is)."""

    reads_files = True

    def __init__(self, name: str, reader: str, subdir: str = "", **kwargs):
        super().__init__(name, **kwargs)
        self.reader, self.subdir = reader, subdir

    def cache_key(self) -> dict:
        return {**super().cache_key(), "reader": self.reader, "subdir": self.subdir}

    def files_read(self, split: str, root: Path) -> list[Path]:
        from lepton_cli.data.readers import files_read

        return files_read(self.reader, self.files_base(split, root), train=split == "train")

    def files_base(self, split: str, root: Path) -> Path:
        return root / self.subdir

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from lepton_cli.data.readers import READERS

        return READERS[self.reader](root / self.subdir, train=split == "train", download=download)


class ImageFolderDomain(Domain):
    """A class-per-folder tree of images, decoded to RGB at `image_size` (`data.image_size` then
    resizes to the backbone's input).

    `layout="plain"`: `path` (and optional `test_path`), absolute or relative to `data.root`.
    `layout="office31"` / `"office_home"`: the Office-31 / Office-Home `domain` under `data.root`,
    found by `readers.office31_path` / `readers.office_home_path`.

    Without a separate test folder the whole tree is both the training data and the test set.
    That is the usual protocol for Office-31 and Office-Home (Saenko et al. 2010; Venkateswara et
    al. 2017), which have no official test split: as a target, all images are the unlabelled
    training data and, with their labels, the test set; as a source, train and test are the same
    labelled images.
    """

    reads_files = True
    LAYOUTS = ("plain", "office31", "office_home")

    def __init__(self, name: str = "imagefolder", path: str | None = None, test_path: str | None = None,
                 image_size: int = 224, on_corrupt: str = "skip", layout: str = "plain", domain: str | None = None,
                 **kwargs):
        super().__init__(name, **kwargs)
        if layout not in self.LAYOUTS:
            raise LeptonError(f"{name}: layout must be one of {', '.join(self.LAYOUTS)}, got {layout!r}")
        self.path, self.test_path, self.image_size = path, test_path, image_size
        self.on_corrupt, self.layout, self.domain = on_corrupt, layout, domain

    def cache_key(self) -> dict:
        # on_corrupt too: a result with corrupt files skipped must not answer a run that asked for an error.
        return {**super().cache_key(), "path": self.path, "test_path": self.test_path, "image_size": self.image_size,
                "layout": self.layout, "domain": self.domain, "on_corrupt": self.on_corrupt}

    def files_read(self, split: str, root: Path) -> list[Path]:
        from lepton_cli.data import readers

        return readers.image_folder_files(self.folder(split, root))[1]

    def files_base(self, split: str, root: Path) -> Path:
        return self.folder(split, root)

    def folder(self, split: str, root: Path) -> Path:
        """The class-per-folder directory that holds `split`."""
        from lepton_cli.data import readers

        if self.layout == "office31":
            return readers.office31_path(root, self.domain)
        if self.layout == "office_home":
            return readers.office_home_path(root, self.domain)
        if self.path is None:
            raise LeptonError(f"data set {self.name} needs a folder: add source.path=/path/to/class_folders "
                              "(or target.path=...), with one sub-folder of images per class")
        folder = Path(self.test_path if split == "test" and self.test_path else self.path).expanduser()
        return folder if folder.is_absolute() else root / folder

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from lepton_cli.data import readers

        return readers.read_image_folder(self.folder(split, root), self.image_size, on_corrupt=self.on_corrupt)

    def image_files(self, split: str, root: Path) -> ImageFiles:
        from lepton_cli.data import readers

        files, labels, classes = readers.list_image_folder(self.folder(split, root))
        return _renamed(self, ImageFiles(files, labels, classes, self.image_size))


class ImageListDomain(Domain):
    """A data set whose release lists its images in text files (`readers/image_lists.py`):
    `dataset="domainnet"` with `domain` one of its six domains (train and test lists), or
    `dataset="visda2017"` with `domain` `train` (synthetic) or `validation` (real). VisDA-2017 has
    no labelled test split for either: as with Office-31, the list is both train and test.
    Decoded to RGB at `image_size`; too large for memory on most machines, so `data.streaming=auto`
    usually reads it from disk while training."""

    reads_files = True
    DATASETS = ("domainnet", "visda2017")

    def __init__(self, name: str, dataset: str, domain: str, image_size: int = 224, on_corrupt: str = "skip", **kwargs):
        super().__init__(name, **kwargs)
        if dataset not in self.DATASETS:
            raise LeptonError(f"{name}: dataset must be one of {', '.join(self.DATASETS)}, got {dataset!r}")
        self.dataset, self.domain, self.image_size, self.on_corrupt = dataset, domain, image_size, on_corrupt

    def cache_key(self) -> dict:
        return {**super().cache_key(), "dataset": self.dataset, "domain": self.domain, "image_size": self.image_size,
                "on_corrupt": self.on_corrupt}

    def _list(self, split: str, root: Path) -> tuple[Path, Path, list[str]]:
        """(list file, the folder its paths are relative to, class names) of `split`."""
        from lepton_cli.data import readers
        from lepton_cli.data.readers.image_lists import DOMAINNET_CLASSES, VISDA2017_CLASSES

        if self.dataset == "domainnet":
            return *readers.domainnet_list(root, self.domain, split), DOMAINNET_CLASSES
        return *readers.visda2017_list(root, self.domain), VISDA2017_CLASSES

    def files_read(self, split: str, root: Path) -> list[Path]:
        from lepton_cli.data import readers

        list_file, base, classes = self._list(split, root)
        return [list_file, *readers.list_image_list(list_file, base, classes)[0]]

    def files_base(self, split: str, root: Path) -> Path:
        return root / self.dataset

    def _decode(self, split: str, root: Path, download: bool) -> ImageArrays:
        from lepton_cli.data import readers

        return readers.read_image_list(*self._list(split, root), self.image_size, on_corrupt=self.on_corrupt)

    def image_files(self, split: str, root: Path) -> ImageFiles:
        from lepton_cli.data import readers

        files, labels, classes = readers.list_image_list(*self._list(split, root))
        return _renamed(self, ImageFiles(files, labels, classes, self.image_size))


def _renamed(domain: Domain, files: ImageFiles) -> ImageFiles:
    """The class names as `Domain.load` gives them (`rename_classes` applied)."""
    files.classes = [domain.rename_classes.get(c, c) for c in files.classes]
    return files


def _usable_cache_dir(cache_dir: str | Path) -> Path | None:
    """The cache folder, created if needed; None (with a warning) when it cannot be created, so the
    run goes on without a cache; an error when the path is a file, which is surely a mistake."""
    path = Path(cache_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise LeptonError(f"data cache directory {path} is a file (or inside one); remove that file or set "
                          "data.cache_dir= (or $LEPTON_CACHE) to a directory") from None
    except OSError as error:
        warnings.warn(f"cannot create data cache directory {path} ({error.strerror or error}); continuing without "
                      "caching (set data.cache_dir= to a writable directory)", stacklevel=3)
        return None
    return path


def _files_record(base: Path, files: Sequence[Path]) -> list[str]:
    """`name<TAB>size<TAB>mtime_ns` of each file, sorted: what a cache of decoded files is keyed on."""
    record = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:  # gone since it was listed: the decoder will say so
            continue
        record.append(f"{Path(os.path.relpath(file, base)).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return sorted(record)


def _changed(recorded: list[str], current: list[str]) -> int:
    """How many files were added, removed or changed between two records."""
    before = dict(entry.split("\t", 1) for entry in recorded)
    after = dict(entry.split("\t", 1) for entry in current)
    return sum(before.get(name) != after.get(name) for name in before.keys() | after.keys())


def _read_cache(path: Path, record: list[str] | None, what: str) -> ImageArrays | None:
    """The cached arrays; None when there is no cache, when it records other files than `record`
    (a warning says how many changed) or when it is truncated or otherwise unreadable (a warning
    too): the data is then decoded again and the cache rewritten. Never unpickles."""
    if not path.exists():
        return None
    stale = None
    try:
        with np.load(path, allow_pickle=False) as data:
            if record is not None:
                recorded = [str(entry) for entry in data["files"]] if "files" in data.files else []
                if recorded != record:
                    stale = _changed(recorded, record)
            if stale is None:
                return ImageArrays(data["images"], data["labels"], [str(c) for c in data["classes"]])
    except Exception as error:  # noqa: BLE001 - a broken cache is rebuilt, whatever broke it
        warnings.warn(f"data cache {path} is unreadable ({type(error).__name__}); decoding the data again", stacklevel=3)
        return None
    warnings.warn(f"data cache for {what} is out of date ({stale} files changed); decoding again", stacklevel=3)
    return None


def _write_cache(path: Path, arrays: ImageArrays, record: list[str] | None) -> None:
    """Write the cache atomically; a cache that cannot be written (full disk, no permission) only
    costs the next run a decode, so it is a warning and the run goes on."""
    def save(buffer) -> None:
        np.savez(buffer, images=arrays.images, labels=arrays.labels, classes=np.array(arrays.classes, dtype=str),
                 files=np.array(record or [], dtype=str))

    try:
        write_buffer_atomically(path, save)
    except WriteFailed as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        warnings.warn(f"could not write data cache {path} ({reason}); continuing without caching "
                      "(free some space or set data.cache_dir= elsewhere)", stacklevel=3)
