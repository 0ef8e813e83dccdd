"""Conditional adversarial domain adaptation, CDAN and CDAN+E (Long, Cao, Wang & Jordan,
"Conditional Adversarial Domain Adaptation", NeurIPS 2018), as in TLlib's
``tllib/alignment/cdan.py``."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.losses import ConditionalDomainAdversarialLoss, DomainDiscriminator, conditional_input_dim
from lepton_cli.methods.base import AdaptationMethod
from lepton_cli.methods.dann import DANN


class CDAN(DANN):
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
        AdaptationMethod.__init__(self, backbone, num_classes, **kwargs)  # DANN's plain discriminator is not built
        self.trade_off = trade_off
        features_dim = self.model.features_dim
        discriminator = DomainDiscriminator(conditional_input_dim(features_dim, num_classes, randomized, randomized_dim),
                                            hidden)
        self.domain_adversary = ConditionalDomainAdversarialLoss(discriminator, features_dim, num_classes,
                                                                 entropy_conditioning, randomized, randomized_dim)

    def transfer_loss(self, source_features: torch.Tensor, source_logits: torch.Tensor,
                      target_features: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
        return self.domain_adversary(source_features, source_logits, target_features, target_logits)
