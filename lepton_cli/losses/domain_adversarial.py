"""Domain-adversarial training, DANN (Ganin et al., "Domain-Adversarial Training of Neural
Networks", JMLR 2016), in the form of TLlib's ``tllib/alignment/dann.py``."""

import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.losses.gradient_reversal import grad_reverse


class DomainDiscriminator(nn.Sequential):
    """An MLP with ``hidden_layers`` hidden layers of width ``hidden`` that outputs one logit per
    sample: > 0 means "source".

    The default, two hidden layers, is TLlib's (and the paper's image experiments'); with
    ``hidden_layers=0`` it is one linear layer, the logistic-regression domain classifier of the
    paper's shallow DANN (Ganin et al. 2016, §5.1.1, Amazon reviews), and ``hidden`` is unused.
    With ``batch_norm=True`` (default, as in TLlib) each hidden layer is Linear-BatchNorm-ReLU;
    with ``batch_norm=False`` it is the paper's Linear-ReLU-Dropout(0.5). The output has shape
    ``(batch, 1)``. Because of the BatchNorm, feed source and target through it in *one* call
    (as :class:`DomainAdversarialLoss` does), so both domains share the batch statistics.
    """

    def __init__(self, in_features: int, hidden: int = 1024, batch_norm: bool = True, hidden_layers: int = 2) -> None:
        def block(n_in: int) -> list[nn.Module]:
            if batch_norm:
                return [nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            return [nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.5)]

        widths = [in_features] + [hidden] * hidden_layers
        super().__init__(*(module for n_in in widths[:-1] for module in block(n_in)), nn.Linear(widths[-1], 1))
        self.in_features = in_features


def adversarial_domain_loss(
    discriminator: nn.Module,
    source_inputs: torch.Tensor,
    target_inputs: torch.Tensor,
    coeff: float,
    source_weight: torch.Tensor | None = None,
    target_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse gradients, discriminate source (label 1) from target (label 0), return
    ``(loss, domain_accuracy)``.

    The loss is :math:`\\tfrac12\\,(\\text{mean}_s\\, w_s\\,\\ell_s + \\text{mean}_t\\,
    w_t\\,\\ell_t)` with :math:`\\ell` the binary cross-entropy on logits, so each domain counts
    equally whatever the batch sizes. The accuracy is detached (for logging).
    """
    inputs = grad_reverse(torch.cat([source_inputs, target_inputs], dim=0), coeff)
    logits = discriminator(inputs).reshape(-1)
    source_logits, target_logits = logits.split([len(source_inputs), len(target_inputs)])
    source_loss = F.binary_cross_entropy_with_logits(
        source_logits, torch.ones_like(source_logits), weight=source_weight
    )
    target_loss = F.binary_cross_entropy_with_logits(
        target_logits, torch.zeros_like(target_logits), weight=target_weight
    )
    with torch.no_grad():
        correct = torch.cat([source_logits > 0, target_logits <= 0])
        accuracy = correct.float().mean()
    return 0.5 * (source_loss + target_loss), accuracy


class DomainAdversarialLoss(nn.Module):
    """The DANN domain loss, with the gradient reversal built in.

    Given features :math:`f_s, f_t`, a discriminator :math:`D` (returning logits) and
    :math:`R_\\lambda` the gradient reversal layer with :math:`\\lambda` = ``self.coeff``:

    .. math::
        \\mathcal{L} = \\tfrac12 \\Big( \\mathbb{E}_{s}\\, w_s \\,
            \\mathrm{BCE}(D(R_\\lambda(f_s)), 1)
            + \\mathbb{E}_{t}\\, w_t \\, \\mathrm{BCE}(D(R_\\lambda(f_t)), 0) \\Big)

    Minimising :math:`\\mathcal{L}` over all parameters trains :math:`D` to tell the domains
    apart and, through the reversed gradient, the feature extractor to make them
    indistinguishable. Per-sample weights :math:`w` default to 1 (CDAN+E passes entropy
    weights). ``coeff`` is an attribute for the training loop to anneal (see
    :func:`~lepton_cli.losses.dann_coefficient`); ``domain_accuracy`` holds the discriminator's
    accuracy on the last call, as a detached tensor, for logging.
    """

    def __init__(self, discriminator: nn.Module, coeff: float = 1.0) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.coeff = coeff
        self.domain_accuracy: torch.Tensor | None = None

    def forward(
        self,
        source_features: torch.Tensor,
        target_features: torch.Tensor,
        source_weight: torch.Tensor | None = None,
        target_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        loss, self.domain_accuracy = adversarial_domain_loss(
            self.discriminator,
            source_features,
            target_features,
            self.coeff,
            source_weight,
            target_weight,
        )
        return loss
