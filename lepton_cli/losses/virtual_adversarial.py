"""Virtual adversarial training, VAT (Miyato, Maeda, Koyama & Ishii, "Virtual Adversarial
Training", TPAMI 2018), the smoothness term of VADA / DIRT-T (Shu, Bui, Narui & Ermon, ICLR
2018)."""

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _unit_per_sample(direction: torch.Tensor) -> torch.Tensor:
    """Scale each sample's direction to L2 norm 1 over all non-batch dims.

    Dividing by the max-abs first (as Miyato's code does) keeps gradients of order 1e-12, which
    the power iteration produces with a small ``xi``, from vanishing under the norm's epsilon.
    A zero direction stays zero.
    """
    flat = direction.flatten(1)
    flat = flat / flat.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
    return F.normalize(flat, dim=1).view_as(direction)


def _kl_from_clean(clean_log_probs: torch.Tensor, perturbed_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_perturbed), averaged over the batch."""
    perturbed_log_probs = F.log_softmax(perturbed_logits, dim=1)
    return F.kl_div(perturbed_log_probs, clean_log_probs, reduction="batchmean", log_target=True)


def vat_loss(
    forward_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    logits: torch.Tensor,
    eps: float = 1.0,
    xi: float = 1e-6,
    power_iterations: int = 1,
) -> torch.Tensor:
    """Local distributional smoothness: how much the prediction moves under the worst
    perturbation of L2 norm ``eps``.

    .. math::
        r_{adv} = \\epsilon \\, \\frac{g}{\\lVert g \\rVert}, \\quad
        g = \\nabla_d\\, \\mathrm{KL}\\big(p(y|x) \\,\\|\\, p(y|x + \\xi d)\\big), \\qquad
        \\mathcal{L}_{VAT} = \\mathrm{KL}\\big(p(y|x) \\,\\|\\, p(y|x + r_{adv})\\big)

    ``forward_fn`` maps inputs to logits; ``logits`` = ``forward_fn(x)`` on the clean input,
    used as the fixed (detached) reference :math:`p(y|x)`. :math:`d` starts as a random
    direction, normalised per sample over all non-batch dims, and is refined by
    ``power_iterations`` steps of the power method. Those steps take the gradient with respect
    to :math:`d` only (``torch.autograd.grad``), so they leave no ``.grad`` on model
    parameters; the returned loss back-propagates into the model through the final forward at
    :math:`x + r_{adv}` only (the adversarial input itself is a constant, as in VADA).

    Caveats for callers:

    * BatchNorm: ``forward_fn`` runs ``power_iterations + 1`` extra times on perturbed copies
      of ``x``; in train mode each call updates the BN running statistics. Pass a
      ``forward_fn`` that does not update them harmfully (e.g. one that sets BN momentum to 0,
      or runs BN layers in eval mode) if that matters for your model.
    * ``xi`` = 1e-6 (the papers' value) is small: on float32 inputs of large magnitude,
      ``x + xi * d`` can round back to ``x``, and the direction then comes out zero (the loss is
      then just the KL at ``x``). Raise ``xi`` if the adversarial direction is degenerate.
    """
    clean_log_probs = F.log_softmax(logits.detach().float(), dim=1)
    direction = vat_direction(forward_fn, x, clean_log_probs, xi, power_iterations)
    adversarial_input = x.detach() + eps * direction
    return _kl_from_clean(clean_log_probs, forward_fn(adversarial_input).float())


def vat_direction(
    forward_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    clean_log_probs: torch.Tensor,
    xi: float = 1e-6,
    power_iterations: int = 1,
) -> torch.Tensor:
    """The adversarial direction of :func:`vat_loss`, unit L2 norm per sample: ``power_iterations``
    steps of the power method from a random direction, by the gradient of
    KL(p(y|x) || p(y|x + ξd)) with respect to d. It is only as good as the arithmetic: ``x + ξd``
    must differ from ``x``, so run it in float32 (bfloat16's 8-bit mantissa rounds a 1e-3 step on
    inputs of order 1 away, and the direction is noise)."""
    x = x.detach()
    direction = _unit_per_sample(torch.randn_like(x))
    for _ in range(power_iterations):
        direction.requires_grad_(True)
        divergence = _kl_from_clean(clean_log_probs, forward_fn(x + xi * direction).float())
        (gradient,) = torch.autograd.grad(divergence, direction)
        direction = _unit_per_sample(gradient.detach())
    return direction
