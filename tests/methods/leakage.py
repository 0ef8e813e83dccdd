"""Leakage check shared by the method tests: train a few deterministic CPU steps with the target
training labels as loaded, and again with them shuffled, and compare the weights bit for bit.

The labels are shuffled as they come off disk (the target Domain's `load`), before the
DataModule masks them, so they are exactly what a method would see if it could read them.

Domain generalisation goes further: its methods (`uses_target_train = False`) may not read the
target training images at all, so `replace_images_on_load` swaps them for noise of the same shape
and the weights must still be equal bit for bit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from tests.conftest import TINY, compose_config


def shuffle_labels_on_load(domain, seed: int = 123) -> None:
    """Make `domain.load("train", ...)` return its labels permuted (every other split unchanged)."""
    load = domain.load

    def shuffled_load(split, *args, **kwargs):
        arrays = load(split, *args, **kwargs)
        if split == "train":
            labels = np.random.default_rng(seed).permutation(arrays.labels)
            assert (labels != arrays.labels).any(), "the permutation left every label in place"
            arrays.labels = labels
        return arrays

    domain.load = shuffled_load


def replace_images_on_load(domain, seed: int = 321) -> None:
    """Make `domain.load("train", ...)` return noise images of the same shape (labels unchanged)."""
    load = domain.load

    def noisy_load(split, *args, **kwargs):
        arrays = load(split, *args, **kwargs)
        if split == "train":
            noise = np.random.default_rng(seed).integers(0, 256, arrays.images.shape, dtype=np.uint8)
            assert (noise != arrays.images).any(), "the noise equals the images"
            arrays.images = noise
        return arrays

    domain.load = noisy_load


def build(method_overrides: list[str], shuffle_target_train_labels: bool = False, run_dir: Path | None = None,
          base: list[str] = TINY, replace_target_train_images: bool = False):
    """Seeded (datamodule, method) of a `base` (TINY) experiment with `method_overrides`, set up;
    another `base` runs the check on another modality (`tests/data/text_audio_fakes.py`)."""
    import pytorch_lightning as pl

    from lepton_cli.builders.data import build_datamodule
    from lepton_cli.builders.method import build_method

    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="lepton_leakage_"))
    cfg = compose_config([*base, *method_overrides], run_dir)
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule = build_datamodule(cfg)
    if shuffle_target_train_labels:
        shuffle_labels_on_load(datamodule.target)
    if replace_target_train_images:
        replace_images_on_load(datamodule.target)
    datamodule.setup()
    return datamodule, build_method(cfg, datamodule)


def train_weights(method_overrides: list[str], shuffle_target_train_labels: bool, steps: int = 3,
                  base: list[str] = TINY, replace_target_train_images: bool = False) -> dict[str, torch.Tensor]:
    """The full state_dict (weights and buffers) after `steps` deterministic CPU training steps."""
    import pytorch_lightning as pl

    datamodule, method = build(method_overrides, shuffle_target_train_labels, base=base,
                               replace_target_train_images=replace_target_train_images)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, deterministic=True, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(method, datamodule=datamodule)
    assert trainer.global_step == steps
    return {name: value.detach().clone() for name, value in method.state_dict().items()}


def assert_bitwise_equal(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"weights depend on the target training labels (or images): {different[:5]}"
