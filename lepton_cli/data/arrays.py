"""The in-memory form every data set is decoded to once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageArrays:
    """One split of one data set: uint8 images (N, H, W, C) with C in {1, 3}, int64 labels (N,),
    and the class names that the labels index.

    `cacheable` is False when the decoder left out files it could not open (no permission, an I/O
    error): they may open next time with the same size and mtime, so the result must not be cached.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    cacheable: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, H, W, C) with C in (1, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        # Readers check labels against their file and say which; this catches any that slip through,
        # because NumPy indexing would wrap a negative label around to the last class.
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels must be in 0..{len(self.classes) - 1} for {len(self.classes)} classes, "
                             f"got {self.labels.min()}..{self.labels.max()}")

    def __len__(self) -> int:
        return len(self.labels)
