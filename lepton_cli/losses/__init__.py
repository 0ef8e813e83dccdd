"""Reusable loss pieces for domain adaptation, one idea per module, independent of any
training loop."""

from lepton_cli.losses.attacks import adversarial_examples
from lepton_cli.losses.class_confusion import mcc_loss
from lepton_cli.losses.conditional import (
    ConditionalDomainAdversarialLoss,
    RandomizedMultilinearMap,
    conditional_input_dim,
    entropy_weights,
    multilinear_map,
)
from lepton_cli.losses.coral import coral_penalty, pairwise_coral
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
from lepton_cli.losses.feature_distillation import (
    AttentionTransferLoss,
    HintLoss,
    LayerOutput,
    RelationalLoss,
)
from lepton_cli.losses.gradient_reversal import (
    GradientReversal,
    dann_coefficient,
    grad_reverse,
)
from lepton_cli.losses.meta_learning import meta_test_loss
from lepton_cli.losses.mixstyle import MixStyle, mixstyle
from lepton_cli.losses.virtual_adversarial import vat_direction, vat_loss

__all__ = [
    "AttentionTransferLoss",
    "ConditionalDomainAdversarialLoss",
    "DomainAdversarialLoss",
    "DomainDiscriminator",
    "GradientReversal",
    "HintLoss",
    "LayerOutput",
    "MixStyle",
    "RandomizedMultilinearMap",
    "RelationalLoss",
    "adversarial_domain_loss",
    "adversarial_examples",
    "conditional_input_dim",
    "coral_penalty",
    "dann_coefficient",
    "entropy",
    "entropy_of_probs",
    "entropy_weights",
    "grad_reverse",
    "information_maximization",
    "kd_loss",
    "mcc_loss",
    "meta_test_loss",
    "mixstyle",
    "multilinear_map",
    "pairwise_coral",
    "vat_direction",
    "vat_loss",
]
