"""MixStyle (Zhou, Yang, Qiao & Xiang, "Domain Generalization with MixStyle", ICLR 2021)."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.losses.mixstyle import MixStyle as MixStyleLayer
from lepton_cli.methods.base import AdaptationMethod


class MixStyle(AdaptationMethod):
    """Cross-entropy on the pooled sources, with the instance statistics of early feature maps
    mixed between images (`losses.mixstyle.MixStyle`, forward hooks after the modules named in
    `layers`, paths in the classifier such as `backbone.features.2`): with probability `p` per
    forward, λ ~ Beta(`alpha`, `alpha`); partners at random (`mix=random`) or from another source
    domain (`mix=crossdomain`, from `batch["source_domain"]`). The authors insert it after the
    first residual stages of a ResNet (`backbone.layer1,layer2`); for the digit CNN the default is
    after each of its two conv blocks. Identity in evaluation; the target is never read.
    """

    uses_target_train = False

    def __init__(self, backbone: nn.Module, num_classes: int, layers: list[str] | None = None, p: float = 0.5,
                 alpha: float = 0.1, mix: str = "random", **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.mixstyle = MixStyleLayer(self.model, list(layers or ["backbone.features.2", "backbone.features.6"]),
                                      p=p, alpha=alpha, mix=mix)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images, labels = batch["source"]
        self.mixstyle.domain_index = batch.get("source_domain")
        logits, _ = self.model(self.view(images))
        loss = self.source_loss(logits, labels)
        self.log_losses(loss=loss)
        return loss
