"""Images read from disk while training instead of decoded into memory first (data sets too large
for RAM: DomainNet, VisDA-2017, big image folders).

A file-list data set (`Domain.image_files`) is listed, not decoded: `ImageFiles` holds each split's
paths, labels and class names. `StreamedImages` stands where the in-memory path holds a uint8
tensor: indexing it by one number decodes that image (in a DataLoader worker) and brings it to the
run's size and channels with `to_tensor`, the very function the in-memory path applies to the
whole split, so the batches, and everything downstream of them, are the same.

`choose_streaming` decides from a size estimate made before anything is decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from lepton_cli.data.arrays import ImageArrays
from lepton_cli.errors import LeptonError

STREAMING_CHOICES = ("auto", "on", "off")
DEFAULT_MEMORY_FRACTION = 0.25  # data.max_memory_gb=auto: this share of the machine's physical memory
GB = 1e9


class StreamingError(LeptonError):
    """A file that cannot be decoded while streaming. A DataLoader worker's exception comes back to
    the main process rebuilt as `type(message + its worker traceback)`; this keeps only the original
    line, so the user still sees one line naming the file."""

    def __init__(self, message: str):
        super().__init__(message.rsplit(f"{type(self).__name__}: ", 1)[-1].strip())


def to_tensor(arrays: ImageArrays, image_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring one split to uint8 (N, channels, image_size, image_size)."""
    images = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).contiguous()
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:  # ITU-R 601 luma, as PIL's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if images.shape[-2:] != (image_size, image_size):
        resized = []
        for chunk in images.split(4096):  # bounded memory for large sets
            resized.append(F.interpolate(chunk.float(), size=(image_size, image_size), mode="bilinear",
                                         antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8))
        images = torch.cat(resized)
    return images.contiguous(), torch.from_numpy(arrays.labels)


@dataclass
class ImageFiles:
    """One split of a file-list data set, listed but not decoded: image paths, int64 labels, the
    class names they index, and how the in-memory reader would decode each file (RGB, resized to
    `decode_size`). Class alignment subsets it like an `ImageArrays`."""

    modality: ClassVar[str] = "image"

    files: np.ndarray  # str paths (object array: cheap to subset and to send to workers)
    labels: np.ndarray
    classes: list[str]
    decode_size: int | None
    cacheable: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        self.files = np.asarray(self.files, dtype=object)
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def subset(self, keep: np.ndarray, labels: np.ndarray, classes: list[str]) -> ImageFiles:
        return ImageFiles(self.files[keep], labels, classes, self.decode_size)

    def decoded_bytes(self, image_size: int | None, channels: int) -> int:
        """What decoding this split into memory would hold: each image at the decoded size (RGB) and,
        when the run's size (None: the decoded size) or channels differ, its converted copy too."""
        decoded = self.decode_size or image_size or 0
        image_size = image_size or decoded
        per_image = 3 * decoded ** 2 + (channels * image_size ** 2 if (decoded, 3) != (image_size, channels) else 0)
        return len(self.files) * per_image

    def __len__(self) -> int:
        return len(self.labels)


class StreamedImages:
    """A split's images on disk, indexed like the uint8 (N, C, H, W) tensor of the in-memory path:
    `images[i]` decodes image i; `images[index_tensor]` is a subset (still on disk); iterating and
    `split(n)` decode in order (for the few callers that walk a whole split, e.g. the pictures)."""

    def __init__(self, files: np.ndarray, decode_size: int | None, image_size: int, channels: int):
        self.files, self.decode_size = np.asarray(files, dtype=object), decode_size
        self.image_size, self.channels = image_size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor) and index.ndim == 0:
            index = int(index)
        if isinstance(index, (int, np.integer)):
            return self._decode(str(self.files[index]))
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return StreamedImages(self.files[index], self.decode_size, self.image_size, self.channels)

    def _decode(self, path: str) -> torch.Tensor:
        pixels = decode_image_file(path, self.decode_size)
        image = ImageArrays(pixels[None].copy(), np.zeros(1, dtype=np.int64), ["image"])  # PIL's array is read-only
        return to_tensor(image, self.image_size, self.channels)[0][0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self._decode(str(path)) for path in self.files)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Decoded batches of at most `size` images, in order (as `torch.Tensor.split`)."""
        for start in range(0, len(self), size):
            yield torch.stack([self._decode(str(path)) for path in self.files[start:start + size]])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), self.channels, self.image_size, self.image_size)


def decode_image_file(path: str, size: int | None) -> np.ndarray:
    """One image file as the in-memory readers decode it (RGB, resized to `size`). A file that cannot
    be decoded stops the run with one line naming it: a streamed split was listed, not read, so
    unlike the in-memory path it cannot leave the file out beforehand."""
    import warnings

    from PIL import Image

    from lepton_cli.data.readers.image_decoding import _decode_image
    from lepton_cli.data.readers.official_files import _one_line

    with warnings.catch_warnings():  # a decompression bomb is refused like a corrupt file, as in the readers
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        pixels = _decode_image(Path(path), size)
    if isinstance(pixels, Exception):
        raise StreamingError(f"cannot decode image {path} ({_one_line(pixels)}) while streaming it from disk; remove or "
                          "replace the file (or set data.streaming=off: decoding into memory skips corrupt images)")
    return pixels


def physical_memory_bytes() -> int:
    """This machine's physical memory (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def max_memory_bytes(max_memory_gb: float | str) -> float:
    """`data.max_memory_gb` in bytes; `auto` is DEFAULT_MEMORY_FRACTION of physical memory."""
    if max_memory_gb == "auto":
        return DEFAULT_MEMORY_FRACTION * physical_memory_bytes() or float("inf")
    if isinstance(max_memory_gb, bool) or not isinstance(max_memory_gb, (int, float)) or max_memory_gb <= 0:
        raise LeptonError(f"data.max_memory_gb must be a number of GB > 0 or auto, got {max_memory_gb!r}; "
                          "set data.max_memory_gb=auto (a quarter of this machine's memory) or e.g. data.max_memory_gb=8")
    return max_memory_gb * GB


def check_streaming_setting(streaming: str) -> None:
    if streaming not in STREAMING_CHOICES:
        raise LeptonError(f"data.streaming must be auto, on or off, got {streaming!r}; set data.streaming=on to read "
                          "images from disk while training, off to decode them into memory, auto to decide by size")


def choose_streaming(streaming: str, listed: dict[str, ImageFiles | None], names: dict[str, str],
                     image_size: int | None, channels: int, max_memory_gb: float | str) -> tuple[set[str], str]:
    """Which roles ("source", "target") stream from disk, and the reason in words (for the log line).

    `listed` maps `<role>_<split>` to its `ImageFiles`, or None for a data set that only exists in
    memory (generated digits, idx/bz2/.mat files, text, audio): those always stay in memory.
    `auto` streams every file-list data set when all splits decoded together would need more than
    `data.max_memory_gb`; `on` streams every one that can; `off` none.
    """
    check_streaming_setting(streaming)
    can_stream = sorted({key.split("_")[0] for key, files in listed.items() if files is not None})
    in_memory_only = sorted({names[key.split("_")[0]] for key, files in listed.items() if files is None})
    kept = f"; {', '.join(in_memory_only)} only exist in memory and stay there" if in_memory_only and can_stream else ""
    if streaming == "off":
        return set(), "data.streaming=off"
    if streaming == "on":
        if not can_stream:
            return set(), (f"data.streaming=on, but {', '.join(in_memory_only)} only exist in memory (streaming needs "
                           "a data set of image files: an image folder, Office, PACS, DomainNet, VisDA-2017)")
        return set(can_stream), f"data.streaming=on{kept}"
    needed = sum(files.decoded_bytes(image_size, channels) for files in listed.values() if files is not None)
    limit = max_memory_bytes(max_memory_gb)
    setting = f"data.max_memory_gb={max_memory_gb}" + (f" ({limit / GB:.1f} GB)" if max_memory_gb == "auto" else "")
    if not can_stream:
        return set(), "no data set of image files to stream"
    if needed > limit:
        return set(can_stream), f"decoded images would need {needed / GB:.1f} GB > {setting}{kept}"
    return set(), f"decoded images need {needed / GB:.2f} GB <= {setting}"
