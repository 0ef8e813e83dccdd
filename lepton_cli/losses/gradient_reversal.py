"""Gradient reversal (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016).

The layer is the identity on the forward pass and multiplies the gradient by ``-coeff`` on the
backward pass, so that a feature extractor placed before it is trained to *maximise* the loss of
whatever sits after it (a domain discriminator), while that discriminator minimises it.
"""

import math

import torch
from torch import nn


class _GradientReversalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        # view_as, not x itself: autograd needs a new tensor to attach this node to.
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output.neg() * ctx.coeff, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Return ``x`` unchanged; on backward, multiply the incoming gradient by ``-coeff``.

    Forward: :math:`R(x) = x`.  Backward: :math:`\\partial R / \\partial x = -\\lambda I`, with
    :math:`\\lambda` = ``coeff``.
    """
    return _GradientReversalFunction.apply(x, coeff)


class GradientReversal(nn.Module):
    """Gradient reversal layer :math:`R_\\lambda` of DANN (Ganin et al., JMLR 2016).

    ``coeff`` (:math:`\\lambda`) is a plain attribute so that a training loop can anneal it, e.g.
    ``layer.coeff = dann_coefficient(step / total_steps)``.
    """

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


def dann_coefficient(progress: float, gamma: float = 10.0, high: float = 1.0) -> float:
    """The reversal-coefficient schedule of Ganin et al. (JMLR 2016, section 5.2.2).

    .. math:: \\lambda_p = \\text{high} \\cdot \\left(\\frac{2}{1 + \\exp(-\\gamma p)} - 1\\right)

    ``progress`` :math:`p \\in [0, 1]` is the fraction of training done. The coefficient starts
    at 0, so the noisy early discriminator does not disturb the features, and rises
    monotonically towards ``high`` (0.9999 of it at :math:`p = 1` with the paper's
    :math:`\\gamma = 10`).
    """
    return high * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)
