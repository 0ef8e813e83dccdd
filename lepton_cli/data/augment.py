"""Batched image augmentation on whatever device the batch is on.

Batches arrive as uint8 (B, C, H, W) tensors and are augmented as one tensor: one random affine
warp per sample through `affine_grid`/`grid_sample`, per-sample colour changes and cutout. No
per-image Python, so the same code is fast on a CPU and on a GPU. `weak` and `strong` views are two
configurations of the same module (`conf/augment/*.yaml`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BatchAugment(nn.Module):
    """Random affine (rotation, scale, shear, translation), flip, brightness/contrast, invert and
    cutout, each sample drawn independently. All magnitudes at 0 → the identity.

    Output is float in the normalised space `(x/255 - mean) / std`.
    """

    def __init__(self, rotate: float = 0.0, scale: float = 0.0, shear: float = 0.0, translate: float = 0.0,
                 hflip: bool = False, brightness: float = 0.0, contrast: float = 0.0, invert: float = 0.0,
                 cutout: float = 0.0, mean: float = 0.5, std: float = 0.5):
        super().__init__()
        self.rotate, self.scale, self.shear, self.translate = rotate, scale, shear, translate
        self.hflip, self.brightness, self.contrast = hflip, brightness, contrast
        self.invert, self.cutout = invert, cutout
        self.mean, self.std = mean, std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.normalize(images)
        x = self._colour(self._geometry(images.float() / 255))
        if self.cutout > 0:
            x = self._cutout(x)
        return (x - self.mean) / self.std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images → the normalised float space, no augmentation (evaluation)."""
        return (images.float() / 255 - self.mean) / self.std

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
