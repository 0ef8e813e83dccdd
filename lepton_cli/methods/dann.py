"""Domain-adversarial training, DANN (Ganin et al., "Domain-Adversarial Training of Neural
Networks", JMLR 2016), in the form of TLlib's ``tllib/alignment/dann.py``."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.losses import DomainAdversarialLoss, DomainDiscriminator, dann_coefficient
from lepton_cli.methods.base import AdaptationMethod


class DANN(AdaptationMethod):
    """Cross-entropy on labelled source plus a domain discriminator on the features, trained
    through a gradient reversal layer so that the features stop telling the domains apart:

        loss = CE(x_s, y_s) + trade_off · L_domain(R_λ(f_s), R_λ(f_t))

    λ follows the paper's schedule λ_p = 2 / (1 + exp(-10 p)) - 1 over the training progress p,
    so it is 0 at the start, when the discriminator is still noise. The discriminator is an MLP
    with `hidden_layers` hidden layers of width `hidden`: TLlib's two by default, 0 for the
    paper's logistic regression on the features (its shallow Amazon-reviews network). Target
    labels are never read.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, trade_off: float = 1.0, hidden: int = 1024,
                 hidden_layers: int = 2, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.trade_off = trade_off
        self.domain_adversary = DomainAdversarialLoss(
            DomainDiscriminator(self.model.features_dim, hidden, hidden_layers=hidden_layers))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        target_images, _ = batch["target"]  # the labels are never read
        # One forward over both domains, so batch norm normalises them together (as TLlib does).
        logits, features = self.model(torch.cat([self.view(source_images), self.view(target_images)]))
        sizes = [len(source_images), len(target_images)]
        source_logits, target_logits = logits.split(sizes)
        source_features, target_features = features.split(sizes)
        self.domain_adversary.coeff = dann_coefficient(self.progress)
        transfer = self.transfer_loss(source_features, source_logits, target_features, target_logits)
        classification = self.source_loss(source_logits, source_labels)
        loss = classification + self.trade_off * transfer
        self.log_losses(loss=loss, classification=classification, transfer=transfer,
                        domain_acc=self.domain_adversary.domain_accuracy,
                        grl_coeff=torch.tensor(self.domain_adversary.coeff))
        return loss

    def transfer_loss(self, source_features: torch.Tensor, source_logits: torch.Tensor,
                      target_features: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
        """The domain-adversarial term; CDAN conditions it on the predictions."""
        return self.domain_adversary(source_features, target_features)
