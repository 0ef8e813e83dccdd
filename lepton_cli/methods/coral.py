"""Deep CORAL (Sun & Saenko, ECCV-W 2016) across source domains, as DomainBed's CORAL
(Gulrajani & Lopez-Paz 2021)."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses.coral import pairwise_coral
from lepton_cli.methods.base import AdaptationMethod


class CORAL(AdaptationMethod):
    """Cross-entropy on the pooled sources plus the CORAL penalty (mean and covariance distance of
    the features) averaged over every pair of source domains in the batch:

        loss = CE(x_s, y_s) + trade_off · mean_{i<j} CORAL(f_i, f_j)

    With `target_alignment=true` the target's unlabelled training images join as one more domain
    (multi-source adaptation); by default the target is unseen (domain generalisation). Source
    domains come from `batch["source_domain"]` (`source=multi`); with one source and no target the
    penalty is 0 and this is ERM. Target labels are never read.
    """

    uses_target_train = False

    @classmethod
    def reads_target_train(cls, method_cfg) -> bool:
        return bool(method_cfg.get("target_alignment", False))

    def __init__(self, backbone: nn.Module, num_classes: int, trade_off: float = 1.0, target_alignment: bool = False,
                 **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        if trade_off < 0:
            raise LeptonError(f"method.trade_off must be non-negative, got {trade_off}")
        self.trade_off, self.target_alignment = trade_off, target_alignment

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        domains = batch.get("source_domain", torch.zeros_like(source_labels))
        views = [self.view(source_images)]
        if self.target_alignment and "target" in batch:
            views.append(self.view(batch["target"][0]))  # images only: the labels are never read
        # One forward over all domains, as DomainBed does (batch norm sees them together).
        logits, features = self.model(torch.cat(views))
        source_features = features[: len(source_images)]
        groups = [source_features[domains == d] for d in torch.unique(domains)]
        if len(views) > 1:
            groups.append(features[len(source_images):])
        classification = self.source_loss(logits[: len(source_images)], source_labels)
        penalty = pairwise_coral(groups)
        loss = classification + self.trade_off * penalty
        self.log_losses(loss=loss, classification=classification, coral=penalty)
        return loss
