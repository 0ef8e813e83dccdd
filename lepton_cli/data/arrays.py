"""The in-memory form every data set is decoded to once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImageArrays:
    """One split of one data set: uint8 images (N, H, W, C) with C in {1, 3}, int64 labels (N,),
    and the class names that the labels index."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, H, W, C) with C in (1, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)
