"""Conditional domain-adversarial training, CDAN and CDAN+E (Long, Cao, Wang & Jordan,
"Conditional Adversarial Domain Adaptation", NeurIPS 2018), as in the authors' code
(thuml/CDAN) and TLlib's ``tllib/alignment/cdan.py``."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.losses.domain_adversarial import adversarial_domain_loss
from lepton_cli.losses.entropy import entropy_of_probs

#: Above this many multilinear features (F * C) CDAN switches to the randomized map by default,
#: as the paper does (section 3.2 and its experiments use 1024 random dimensions).
RANDOMIZE_ABOVE = 4096


def multilinear_map(features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Flattened outer product :math:`f \\otimes g` of each sample's features and class
    probabilities: ``(B, F)``, ``(B, C)`` → ``(B, C * F)``.

    Entry ``[b, c * F + k]`` is ``probs[b, c] * features[b, k]`` (class-major, the order of the
    paper's code), i.e. ``torch.einsum("bc,bf->bcf", probs, features).flatten(1)``.
    """
    return torch.einsum("bc,bf->bcf", probs, features).flatten(1)


class RandomizedMultilinearMap(nn.Module):
    """Randomized multilinear map, an unbiased low-dimensional stand-in for
    :func:`multilinear_map` when :math:`F \\cdot C` is large (CDAN, section 3.2).

    .. math:: T_\\odot(f, g) = \\frac{(f R_f) \\odot (g R_g)}{\\sqrt{d}}

    with fixed Gaussian :math:`R_f \\in \\mathbb{R}^{F \\times d}`,
    :math:`R_g \\in \\mathbb{R}^{C \\times d}` drawn once at construction (from ``generator``,
    else the global RNG) and kept as buffers, so they follow ``.to(device)`` and the
    ``state_dict`` but are never trained. :math:`d` = ``output_dim``.
    """

    def __init__(
        self,
        features_dim: int,
        num_classes: int,
        output_dim: int = 1024,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.output_dim = output_dim
        features_projection = torch.randn(features_dim, output_dim, generator=generator)
        probs_projection = torch.randn(num_classes, output_dim, generator=generator)
        self.register_buffer("features_projection", features_projection)
        self.register_buffer("probs_projection", probs_projection)

    def forward(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        projected = (features @ self.features_projection) * (probs @ self.probs_projection)
        return projected / math.sqrt(self.output_dim)


def use_randomized_map(features_dim: int, num_classes: int, randomized: bool | None) -> bool:
    """Resolve ``randomized=None`` ("auto"): randomize when :math:`F \\cdot C` > 4096."""
    if randomized is None:
        return features_dim * num_classes > RANDOMIZE_ABOVE
    return randomized


def conditional_input_dim(
    features_dim: int,
    num_classes: int,
    randomized: bool | None = None,
    randomized_dim: int = 1024,
) -> int:
    """``in_features`` of the discriminator that :class:`ConditionalDomainAdversarialLoss`
    needs for the same arguments: ``randomized_dim`` if the randomized map is used, else
    ``features_dim * num_classes``."""
    if use_randomized_map(features_dim, num_classes, randomized):
        return randomized_dim
    return features_dim * num_classes


def entropy_weights(probs: torch.Tensor) -> torch.Tensor:
    """CDAN+E sample weights :math:`w_i \\propto 1 + e^{-H(p_i)}`, rescaled to average 1.

    Confident predictions (low entropy, weight up to 2) count more than uncertain ones (weight
    down to :math:`1 + 1/C`) in the adversarial loss, so that hard-to-transfer samples do not
    dominate the conditioning. Call it once per domain, so each domain's weights average 1.
    Returned detached: weights scale a loss, they are not trained.
    """
    probs = probs.detach()
    weights = 1.0 + torch.exp(-entropy_of_probs(probs))
    return weights * (len(weights) / weights.sum())


class ConditionalDomainAdversarialLoss(nn.Module):
    """The CDAN / CDAN+E domain loss: the discriminator sees features conditioned on the
    classifier's predictions.

    With :math:`g = \\mathrm{softmax}(\\text{logits})` (detached, as in the authors' code, so
    the domain loss does not train the classifier's outputs directly) and :math:`T` the
    multilinear map :math:`f \\otimes g` (or its randomized version):

    .. math::
        \\mathcal{L} = \\tfrac12 \\Big( \\mathbb{E}_s\\, w_s\\,
            \\mathrm{BCE}(D(R_\\lambda(T(f_s, g_s))), 1)
            + \\mathbb{E}_t\\, w_t\\, \\mathrm{BCE}(D(R_\\lambda(T(f_t, g_t))), 0) \\Big)

    :math:`R_\\lambda` is gradient reversal with :math:`\\lambda` = ``self.coeff``. With
    ``entropy_conditioning=True`` (CDAN+E) the weights are :func:`entropy_weights` of each
    domain, otherwise 1. ``randomized=None`` picks the randomized map when
    ``features_dim * num_classes`` > 4096. The discriminator must take
    :func:`conditional_input_dim` inputs. ``domain_accuracy`` holds the discriminator's accuracy
    on the last call (detached) for logging.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        features_dim: int,
        num_classes: int,
        entropy_conditioning: bool = True,
        randomized: bool | None = None,
        randomized_dim: int = 1024,
        coeff: float = 1.0,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.entropy_conditioning = entropy_conditioning
        self.coeff = coeff
        self.domain_accuracy: torch.Tensor | None = None
        self.randomized_map: RandomizedMultilinearMap | None = None
        if use_randomized_map(features_dim, num_classes, randomized):
            self.randomized_map = RandomizedMultilinearMap(
                features_dim, num_classes, randomized_dim
            )

    def condition(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The discriminator's input for features and (detached) class probabilities."""
        if self.randomized_map is not None:
            return self.randomized_map(features, probs)
        return multilinear_map(features, probs)

    def forward(
        self,
        source_features: torch.Tensor,
        source_logits: torch.Tensor,
        target_features: torch.Tensor,
        target_logits: torch.Tensor,
    ) -> torch.Tensor:
        source_probs = F.softmax(source_logits, dim=1).detach()
        target_probs = F.softmax(target_logits, dim=1).detach()
        source_weight = target_weight = None
        if self.entropy_conditioning:
            source_weight = entropy_weights(source_probs)
            target_weight = entropy_weights(target_probs)
        loss, self.domain_accuracy = adversarial_domain_loss(
            self.discriminator,
            self.condition(source_features, source_probs),
            self.condition(target_features, target_probs),
            self.coeff,
            source_weight,
            target_weight,
        )
        return loss
