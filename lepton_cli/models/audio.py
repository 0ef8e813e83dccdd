"""A speech backbone: a small CNN over log-mel spectrograms (`data.augment.LogMelAugment`'s view)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lepton_cli.models.text import _start_from


class LogMelCNN(nn.Module):
    """Blocks of 3×3 convolution, batch norm, ReLU and 2×2 max-pooling over (1, n_mels, frames),
    then global average pooling: the common keyword-spotting baseline shape (e.g. Sainath & Parada,
    Interspeech 2015, in miniature). Any number of mel bands and frames; `num_features` is the
    last block's width."""

    modality = "audio"

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.1, checkpoint: str | None = None):
        super().__init__()
        blocks, width = [], 1
        for out in channels:
            blocks += [nn.Conv2d(width, out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            width = out
        self.layers = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.num_features = width
        _start_from(self, checkpoint)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        return self.layers(spectrograms)
