"""Batched augmentation: identity at zero magnitude, per-sample randomness, eval = normalise only."""

from __future__ import annotations

import pytest
import torch

from lepton_cli.data.augment import BatchAugment
from lepton_cli.errors import LeptonError


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


def test_float_images_in_unit_range_are_the_same_images_as_uint8_in_training_and_evaluation():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    unit = images.float() / 255  # torchvision's ToTensor convention
    augment = BatchAugment(mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])
    assert torch.allclose(augment.train()(unit), augment.train()(images))  # no second division by 255
    assert torch.allclose(augment.eval()(unit), augment.normalize(images))


@pytest.mark.parametrize(("images", "message"), [
    (torch.full((2, 1, 8, 8), 3.0), r"float images must lie in \[0, 1\]"),  # [0, 255] floats
    (torch.full((2, 1, 8, 8), -0.5), r"float images must lie in \[0, 1\]"),  # normalised already
    (torch.zeros((2, 1, 8, 8), dtype=torch.int64), "uint8 in"),
])
def test_images_outside_the_one_input_rule_are_a_clear_error(images, message):
    for mode in (True, False):
        with pytest.raises(LeptonError, match=message):
            BatchAugment().train(mode)(images)


def test_normalisation_is_per_channel():
    images = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    out = BatchAugment(mean=[0.0, 0.5, 1.0], std=[1.0, 0.5, 0.25]).normalize(images)
    assert out[0, :, 0, 0].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(LeptonError, match="one per channel"):
        BatchAugment(mean=[0.1, 0.2], std=[0.3, 0.4]).normalize(images)


def test_auto_normalisation_takes_the_backbones_statistics_and_explicit_numbers_win():
    auto = BatchAugment(mean="auto", std="auto")
    assert auto.normalization == ([0.5], [0.5])  # until a backbone says otherwise: the digit CNN's
    auto.use_backbone_normalization(([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    mean, std = auto.normalization
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx([0.229, 0.224, 0.225])
    explicit = BatchAugment(mean=0.45, std=0.225)
    explicit.use_backbone_normalization(([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    assert explicit.normalization[0] == pytest.approx([0.45]) and explicit.normalization[1] == pytest.approx([0.225])
    assert "mean" not in BatchAugment().state_dict()  # checkpoints keep their keys
