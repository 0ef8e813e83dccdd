"""Source-only training: the lower bound every adaptation method has to beat."""

from __future__ import annotations

import torch

from lepton_cli.methods.base import AdaptationMethod


class SourceOnly(AdaptationMethod):
    """Cross-entropy on labelled source images; the target domain is only used for evaluation."""

    uses_target_train = False

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images, labels = batch["source"]
        logits, _ = self.model(self.view(images))
        loss = self.source_loss(logits, labels)
        self.log_losses(loss=loss)
        return loss
