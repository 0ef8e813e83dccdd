"""Conditional adversarial domain adaptation, CDAN and CDAN+E (Long, Cao, Wang & Jordan,
"Conditional Adversarial Domain Adaptation", NeurIPS 2018), as in TLlib's
``tllib/alignment/cdan.py``."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.losses import (
    ConditionalDomainAdversarialLoss,
    DomainDiscriminator,
    conditional_input_dim,
    dann_coefficient,
)
from lepton_cli.methods.base import AdaptationMethod


class CDAN(AdaptationMethod):
    """DANN whose discriminator sees the features conditioned on the classifier's predictions,
    the multilinear map f ⊗ softmax(logits), so that it aligns the joint distribution of
    features and classes rather than the features alone:

        loss = CE(x_s, y_s) + trade_off · L_domain(R_λ(T(f_s, g_s)), R_λ(T(f_t, g_t)))

    With `entropy_conditioning` (CDAN+E, the default) confident samples weigh more in the domain
    loss. `randomized=None` uses the randomized multilinear map (of `randomized_dim` dimensions)
    only when features × classes exceeds 4096, as the paper does; true/false force it. λ follows
    DANN's schedule (0 at the start). Target labels are never read.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, trade_off: float = 1.0, entropy_conditioning: bool = True,
                 randomized: bool | None = None, randomized_dim: int = 1024, hidden: int = 1024, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.trade_off = trade_off
        features_dim = self.model.features_dim
        discriminator = DomainDiscriminator(conditional_input_dim(features_dim, num_classes, randomized, randomized_dim),
                                            hidden)
        self.domain_adversary = ConditionalDomainAdversarialLoss(discriminator, features_dim, num_classes,
                                                                 entropy_conditioning, randomized, randomized_dim)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        target_images, _ = batch["target"]  # the labels are never read
        logits, features = self.model(torch.cat([self.view(source_images), self.view(target_images)]))
        sizes = [len(source_images), len(target_images)]
        source_logits, target_logits = logits.split(sizes)
        source_features, target_features = features.split(sizes)
        self.domain_adversary.coeff = dann_coefficient(self.progress)
        transfer = self.domain_adversary(source_features, source_logits, target_features, target_logits)
        classification = self.source_loss(source_logits, source_labels)
        loss = classification + self.trade_off * transfer
        self.log_losses(loss=loss, classification=classification, transfer=transfer,
                        domain_acc=self.domain_adversary.domain_accuracy,
                        grl_coeff=torch.tensor(self.domain_adversary.coeff))
        return loss
