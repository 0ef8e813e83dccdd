"""Reusable loss pieces for domain adaptation, one idea per module, independent of any
training loop."""

from lepton_cli.losses.class_confusion import mcc_loss
from lepton_cli.losses.conditional import (
    ConditionalDomainAdversarialLoss,
    RandomizedMultilinearMap,
    conditional_input_dim,
    entropy_weights,
    multilinear_map,
)
from lepton_cli.losses.distillation import kd_loss
from lepton_cli.losses.domain_adversarial import (
    DomainAdversarialLoss,
    DomainDiscriminator,
    adversarial_domain_loss,
)
from lepton_cli.losses.entropy import (
    entropy,
    entropy_of_probs,
    information_maximization,
)
from lepton_cli.losses.gradient_reversal import (
    GradientReversal,
    dann_coefficient,
    grad_reverse,
)
from lepton_cli.losses.virtual_adversarial import vat_direction, vat_loss

__all__ = [
    "ConditionalDomainAdversarialLoss",
    "DomainAdversarialLoss",
    "DomainDiscriminator",
    "GradientReversal",
    "RandomizedMultilinearMap",
    "adversarial_domain_loss",
    "conditional_input_dim",
    "dann_coefficient",
    "entropy",
    "entropy_of_probs",
    "entropy_weights",
    "grad_reverse",
    "information_maximization",
    "kd_loss",
    "mcc_loss",
    "multilinear_map",
    "vat_direction",
    "vat_loss",
]
