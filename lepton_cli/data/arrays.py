"""The in-memory form every data set is decoded to once: images, or the inputs of another modality."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

# What a data set's inputs are. Each modality has its own batching and views (`data/modality.py`,
# `data/augment.py`); the methods see only "a batch of inputs with labels".
MODALITIES = ("image", "features", "tokens", "audio")
_INPUT_RULES = {
    # modality: (NumPy dtype kind, dimensions, what the inputs are)
    "features": ("f", 2, "float32 (N, D) feature vectors (bag-of-words counts)"),
    "tokens": ("i", 2, "int64 (N, L) token keys, 0 = padding (the vocabulary is built per run)"),
    "audio": ("f", 2, "float32 (N, T) waveforms in [-1, 1], all of one length"),
}


def _checked_labels(labels: np.ndarray, count: int, classes: list[str]) -> np.ndarray:
    if count != len(labels):
        raise ValueError(f"{count} inputs but {len(labels)} labels")
    labels = np.asarray(labels, dtype=np.int64)
    # Readers check labels against their file and say which; this catches any that slip through,
    # because NumPy indexing would wrap a negative label around to the last class.
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must be in 0..{len(classes) - 1} for {len(classes)} classes, "
                         f"got {labels.min()}..{labels.max()}")
    return labels


@dataclass
class ImageArrays:
    """One split of one data set: uint8 images (N, H, W, C) with C in {1, 3}, int64 labels (N,),
    and the class names that the labels index.

    `cacheable` is False when the decoder left out files it could not open (no permission, an I/O
    error): they may open next time with the same size and mtime, so the result must not be cached.
    """

    modality: ClassVar[str] = "image"

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    cacheable: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, H, W, C) with C in (1, 3), got {self.images.dtype} {self.images.shape}")
        self.labels = _checked_labels(self.labels, len(self.images), self.classes)

    @property
    def inputs(self) -> np.ndarray:
        return self.images

    def subset(self, keep: np.ndarray, labels: np.ndarray, classes: list[str]) -> ImageArrays:
        """The images where `keep` is true, with new labels (already subset) and class names."""
        return ImageArrays(self.images[keep], labels, classes)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class InputArrays:
    """One split of a data set of another modality (`MODALITIES`): `inputs` as `_INPUT_RULES`
    says for `modality`, int64 labels (N,) and the class names they index."""

    inputs: np.ndarray
    labels: np.ndarray
    classes: list[str]
    modality: str
    cacheable: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.modality not in _INPUT_RULES:
            raise ValueError(f"modality must be one of {', '.join(_INPUT_RULES)}, got {self.modality!r}")
        kind, ndim, what = _INPUT_RULES[self.modality]
        if self.inputs.dtype.kind != kind or self.inputs.ndim != ndim:
            raise ValueError(f"{self.modality} inputs must be {what}, got {self.inputs.dtype} {self.inputs.shape}")
        self.labels = _checked_labels(self.labels, len(self.inputs), self.classes)

    def subset(self, keep: np.ndarray, labels: np.ndarray, classes: list[str]) -> InputArrays:
        return InputArrays(self.inputs[keep], labels, classes, self.modality)

    def __len__(self) -> int:
        return len(self.labels)
