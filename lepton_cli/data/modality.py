"""What differs between images, text and speech, in one place; the methods see none of it.

A method sees "a batch of inputs with labels": `{"source": (inputs, labels), "target": (inputs,
labels)}`, and turns inputs into the backbone's input with `self.view(inputs, "weak"|"strong")`.
Per modality (`arrays.MODALITIES`) three things differ:

- decoding: a data set's reader returns `ImageArrays` (uint8 images) or `InputArrays` (float
  feature vectors, token keys, waveforms);
- batching: images are brought to one size and channel count (`datamodule.to_tensor`); the other
  inputs are held as they are, except tokens, whose keys are mapped to ids of a vocabulary built
  from source and target *train* only (`Vocabulary`, `input_tensors`);
- views: the `augment=` modules (`data/augment.py`) normalise and augment: affine warps and cutout
  for images, feature or token dropout for text, log-mel + SpecAugment masks for audio.

A run has one modality: a source and target of different modalities are refused (`one_modality`),
and so are an augmentation or a backbone made for another one (`check_components`). A component
says what it is made for with a class attribute `modality`; a backbone without one is an image
backbone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from lepton_cli.data.arrays import ImageArrays, InputArrays
from lepton_cli.errors import LeptonError

# Words that occur once in source and target train together (most of the processed_acl bigrams)
# cannot be learned from; they map to the padding id, which the text backbones ignore.
VOCABULARY_MIN_COUNT = 2
# What to add to the command line for each modality, in the one-line refusals.
SUGGESTED = {
    "image": "augment=digits student=small_cnn",
    "features": "augment=text student=text_mlp",
    "tokens": "augment=tokens student=text_bag",
    "audio": "augment=audio student=audio_cnn",
}


def one_modality(arrays: Mapping[str, ImageArrays | InputArrays], source_name: str, target_name: str) -> str:
    """The modality shared by every split (keys `source_*` / `target_*`); mixing is a LeptonError."""
    found = {key: parts.modality for key, parts in arrays.items()}
    source = {m for key, m in found.items() if key.startswith("source")}
    target = {m for key, m in found.items() if key.startswith("target")}
    if len(source | target) > 1:
        raise LeptonError(f"source {source_name} is {'/'.join(sorted(source))} data but target {target_name} is "
                          f"{'/'.join(sorted(target))}: one run adapts within one modality; choose a source and a "
                          "target of the same kind (lepton list source)")
    return next(iter(source | target))


def component_modality(target: str) -> str:
    """The modality a config's `_target_` (a class or function) declares; image when it declares none."""
    from hydra.utils import get_object

    return getattr(get_object(target), "modality", "image")


def check_components(modality: str, components: Mapping[str, str]) -> None:
    """Refuse an augmentation or backbone (by its config key → `_target_`) made for another modality."""
    for key, target in components.items():
        made_for = component_modality(target)
        if made_for != modality:
            raise LeptonError(f"{key} is made for {made_for} inputs but the data is {modality}; "
                              f"add {SUGGESTED.get(modality, 'the matching augment= and student=')}")


class Vocabulary:
    """Token keys → ids 1..V (sorted by key, so the same data gives the same ids), 0 for padding
    and for keys outside the vocabulary."""

    def __init__(self, keys: np.ndarray):
        self.keys = np.asarray(keys, dtype=np.int64)

    @classmethod
    def fit(cls, key_arrays: Sequence[np.ndarray], min_count: int = VOCABULARY_MIN_COUNT) -> Vocabulary:
        keys = np.concatenate([np.asarray(a).ravel() for a in key_arrays])
        keys, counts = np.unique(keys[keys != 0], return_counts=True)
        return cls(keys[counts >= min_count])

    def __len__(self) -> int:
        """Ids in use, padding included: the size of an embedding table over them."""
        return len(self.keys) + 1

    def encode(self, keys: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.zeros_like(keys)
        position = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return np.where((self.keys[position] == keys) & (keys != 0), position + 1, 0)


def input_tensors(aligned: Mapping[str, InputArrays]) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], int]:
    """Each split (keys `source_train`, `target_train`, ...) as (inputs, labels) tensors, and the
    input width the backbone needs (`data.input_dim`): the feature count, the vocabulary size
    (tokens; built from source and target train, never from a test split) or the waveform length."""
    vocabulary = None
    first = next(iter(aligned.values()))
    if first.modality == "tokens":
        vocabulary = Vocabulary.fit([aligned["source_train"].inputs, aligned["target_train"].inputs])
    widths = {parts.inputs.shape[1] for key, parts in aligned.items()}
    if vocabulary is None and len(widths) > 1:
        raise LeptonError(f"the source and target {first.modality} inputs have different widths {sorted(widths)}; "
                          "choose data sets in one feature space (or of one recording length)")
    tensors = {}
    for key, parts in aligned.items():
        inputs = vocabulary.encode(parts.inputs) if vocabulary is not None else parts.inputs
        tensors[key] = (torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(parts.labels))
    return tensors, len(vocabulary) if vocabulary is not None else widths.pop()
