"""The classifier that every method puts on its backbone."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.models.backbones import as_backbone


class Classifier(nn.Module):
    """backbone → optional bottleneck (Linear-BN-ReLU, as in DANN/CDAN/MCC) → linear head.

    `forward` returns `(logits, features)`: the methods that align domains align `features`.
    A backbone without an integer `num_features` (a torchvision model, any `nn.Module`) is wrapped
    in `FeatureExtractor`, which measures its width.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, bottleneck_dim: int | None = 256):
        super().__init__()
        self.backbone = backbone = as_backbone(backbone)
        width = backbone.num_features
        if bottleneck_dim:
            self.bottleneck = nn.Sequential(nn.Linear(width, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.ReLU())
            width = bottleneck_dim
        else:
            self.bottleneck = nn.Identity()
        self.head = nn.Linear(width, num_classes)
        self.features_dim = width

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.bottleneck(self.backbone(images))
        return self.head(features), features
