"""Minimum Class Confusion, MCC (Jin, Wang, Long & Wang, "Minimum Class Confusion for Versatile
Domain Adaptation", ECCV 2020), as in TLlib's ``tllib/self_training/mcc.py``."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.losses import mcc_loss
from lepton_cli.methods.base import AdaptationMethod


class MCC(AdaptationMethod):
    """Cross-entropy on labelled source plus the class confusion of the temperature-scaled
    target predictions, which is small when no two classes share probability mass:

        loss = CE(x_s, y_s) + trade_off · L_MCC(z_t / T)

    No discriminator: MCC needs only the target logits. Target labels are never read.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, trade_off: float = 1.0, temperature: float = 2.5,
                 **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.trade_off, self.temperature = trade_off, temperature

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        target_images, _ = batch["target"]  # the labels are never read
        logits, _ = self.model(torch.cat([self.view(source_images), self.view(target_images)]))
        source_logits, target_logits = logits.split([len(source_images), len(target_images)])
        classification = self.source_loss(source_logits, source_labels)
        confusion = mcc_loss(target_logits, self.temperature)
        loss = classification + self.trade_off * confusion
        self.log_losses(loss=loss, classification=classification, class_confusion=confusion)
        return loss
