"""Batched augmentation: identity at zero magnitude, per-sample randomness, eval = normalise only."""

from __future__ import annotations

import torch

from lepton_cli.data.augment import BatchAugment


def test_zero_magnitudes_only_normalise():
    images = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    out = BatchAugment(mean=0.5, std=0.5).train()(images)
    assert torch.allclose(out, (images.float() / 255 - 0.5) / 0.5)


def test_eval_mode_does_not_augment():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    strong = BatchAugment(rotate=30, translate=0.2, cutout=0.5, contrast=0.5).eval()
    assert torch.equal(strong(images), strong.normalize(images))


def test_each_sample_gets_its_own_transform():
    image = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    image[..., 6:10, 6:10] = 255
    batch = image.repeat(8, 1, 1, 1)
    out = BatchAugment(translate=0.2, rotate=20).train()(batch)
    assert len({tuple(o.flatten().round(decimals=3).tolist()) for o in out}) > 1


def test_cutout_zeroes_a_square():
    images = torch.full((2, 1, 10, 10), 255, dtype=torch.uint8)
    out = BatchAugment(cutout=0.3, mean=0.0, std=1.0).train()(images)
    assert ((out == 0).flatten(1).sum(1) == 9).all()  # a 3x3 square per image
