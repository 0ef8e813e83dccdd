"""Batched image augmentation on whatever device the batch is on.

Batches arrive as (B, C, H, W) images, uint8 in [0, 255] or float in [0, 1] (torchvision's
`ToTensor` convention): the one input rule, checked by `as_unit_range`. They are augmented as one
tensor: one random affine warp per sample through `affine_grid`/`grid_sample`, per-sample colour
changes and cutout. No per-image Python, so the same code is fast on a CPU and on a GPU. `weak` and
`strong` views are two configurations of the same module (`conf/augment/*.yaml`).

Normalisation is `(x - mean) / std` per channel. `mean: auto, std: auto` (the default in
`conf/augment/`) takes the backbone's own statistics (timm's pretrained config, ImageNet's for
torchvision models; `lepton_cli.models.backbones.backbone_normalization`), and 0.5 / 0.5 for a
backbone without any (the small digit CNN): `AdaptationMethod` resolves it when it is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.errors import LeptonError

AUTO = "auto"
DEFAULT_MEAN, DEFAULT_STD = 0.5, 0.5  # `auto` for a backbone that declares no normalisation
Statistic = float | Sequence[float] | str


def as_unit_range(images: torch.Tensor) -> torch.Tensor:
    """The one rule for image batches: uint8 in [0, 255] or floating point in [0, 1]; returns
    float in [0, 1]. Anything else (integers of another type, floats outside [0, 1], e.g. images
    normalised already) is a LeptonError: silently treating [0, 1] floats as [0, 255] (or the
    reverse) would train on black images."""
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise LeptonError(f"images must be uint8 in [0, 255] or float in [0, 1], got dtype {images.dtype}; "
                          "convert with images.to(torch.uint8) or images.float() / 255")
    low, high = torch.aminmax(images.detach())
    if low < 0 or high > 1:  # one host sync per float batch; the CLI's batches are uint8 and skip it
        raise LeptonError(f"float images must lie in [0, 1] (torchvision's ToTensor), got values in "
                          f"[{float(low):.3g}, {float(high):.3g}]; pass the images un-normalised: the method "
                          "normalises them itself (mean/std in augment=)")
    return images.float()


def _per_channel(value: float | Sequence[float], name: str) -> torch.Tensor:
    values = [float(value)] if isinstance(value, int | float) else [float(v) for v in value]
    if not values or (name == "std" and min(values) <= 0):
        raise LeptonError(f"augment {name} must be a positive number or a list of them, one per channel, got {value!r}")
    return torch.tensor(values).view(1, -1, 1, 1)


class BatchAugment(nn.Module):
    """Random affine (rotation, scale, shear, translation), flip, brightness/contrast, invert and
    cutout, each sample drawn independently. All magnitudes at 0 → the identity.

    Output is float in the normalised space `(x - mean) / std`, x in [0, 1] (see `as_unit_range`);
    `mean` and `std` are one number, one per channel, or `auto` (see the module docstring).
    """

    def __init__(self, rotate: float = 0.0, scale: float = 0.0, shear: float = 0.0, translate: float = 0.0,
                 hflip: bool = False, brightness: float = 0.0, contrast: float = 0.0, invert: float = 0.0,
                 cutout: float = 0.0, mean: Statistic = DEFAULT_MEAN, std: Statistic = DEFAULT_STD):
        super().__init__()
        self.rotate, self.scale, self.shear, self.translate = rotate, scale, shear, translate
        self.hflip, self.brightness, self.contrast = hflip, brightness, contrast
        self.invert, self.cutout = invert, cutout
        if (mean == AUTO) != (std == AUTO):
            raise LeptonError(f"augment mean and std must both be auto or both numbers, got {mean!r} and {std!r}")
        self.auto_normalization = mean == AUTO
        # Not persistent: checkpoints keep their keys, and the values come from the config.
        self.register_buffer("mean", _per_channel(DEFAULT_MEAN if self.auto_normalization else mean, "mean"), persistent=False)
        self.register_buffer("std", _per_channel(DEFAULT_STD if self.auto_normalization else std, "std"), persistent=False)

    def use_backbone_normalization(self, normalization: tuple[Sequence[float], Sequence[float]] | None) -> None:
        """Resolve `mean: auto, std: auto` to the backbone's statistics (None: 0.5 / 0.5); explicit
        numbers in the config are left alone."""
        if self.auto_normalization:
            mean, std = normalization or (DEFAULT_MEAN, DEFAULT_STD)
            self.mean, self.std = _per_channel(mean, "mean").to(self.mean.device), _per_channel(std, "std").to(self.std.device)

    @property
    def normalization(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel (one value when shared by all channels)."""
        return self.mean.flatten().tolist(), self.std.flatten().tolist()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.normalize(images)
        x = self._colour(self._geometry(as_unit_range(images)))
        if self.cutout > 0:
            x = self._cutout(x)
        return self._standardize(x)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images (uint8, or float in [0, 1]) → the normalised float space, no augmentation (evaluation)."""
        return self._standardize(as_unit_range(images))

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean.shape[1] not in (1, x.shape[1]):
            raise LeptonError(f"augment mean/std have {self.mean.shape[1]} values but the images have {x.shape[1]} "
                              "channels; give one value, or one per channel")
        return (x - self.mean) / self.std

    def _uniform(self, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.empty(x.shape[0], device=x.device).uniform_(low, high)

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.rotate or self.scale or self.shear or self.translate or self.hflip):
            return x
        angle = self._uniform(x, -self.rotate, self.rotate) * (math.pi / 180)
        scale = 1 + self._uniform(x, -self.scale, self.scale)
        shear = self._uniform(x, -self.shear, self.shear)
        flip = torch.ones_like(angle)
        if self.hflip:
            flip = torch.where(torch.rand_like(angle) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([
            torch.stack([cos * flip, -sin + shear, self._uniform(x, -2 * self.translate, 2 * self.translate)], dim=1),
            torch.stack([sin * flip, cos, self._uniform(x, -2 * self.translate, 2 * self.translate)], dim=1),
        ], dim=1)  # translate is a fraction of the image; affine_grid's coordinates span 2 units
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], 1, 1, 1)
        if self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (1 + self._uniform(x, -self.contrast, self.contrast).view(shape)) + mean
        if self.brightness:
            x = x + self._uniform(x, -self.brightness, self.brightness).view(shape)
        if self.invert:
            flip = (torch.rand(shape, device=x.device) < self.invert).float()
            x = flip * (1 - x) + (1 - flip) * x
        return x.clamp(0, 1)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Zero one square of side `cutout * size` at a random place in each image."""
        batch, _, height, width = x.shape
        side = max(1, round(self.cutout * min(height, width)))
        top = torch.randint(0, height - side + 1, (batch, 1, 1), device=x.device)
        left = torch.randint(0, width - side + 1, (batch, 1, 1), device=x.device)
        rows = torch.arange(height, device=x.device).view(1, height, 1)
        cols = torch.arange(width, device=x.device).view(1, 1, width)
        inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
        return x * (~inside).unsqueeze(1).float()
