"""Prediction entropy (Shannon, in nats) and the information-maximisation objective."""

import torch
import torch.nn.functional as F

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def entropy_of_probs(probs: torch.Tensor) -> torch.Tensor:
    """Per-row Shannon entropy :math:`-\\sum_c p_c \\log p_c` of probability vectors (dim 1),
    with :math:`0 \\log 0 = 0`."""
    return -torch.special.xlogy(probs, probs).sum(dim=1)


def entropy(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Shannon entropy, in nats, of ``softmax(logits)`` along dim 1.

    .. math:: H(p) = -\\sum_c p_c \\log p_c, \\qquad p = \\mathrm{softmax}(z)

    Computed from ``log_softmax`` so confident (large) logits do not give ``0 * log 0 = nan``.
    Ranges from 0 (one-hot) to :math:`\\log C` (uniform). ``reduction`` is ``"mean"`` (over the
    batch), ``"sum"`` or ``"none"`` (one value per sample). Used as a loss on target predictions
    (entropy minimisation, Grandvalet & Bengio 2005).
    """
    log_probs = F.log_softmax(logits, dim=1)
    per_sample = -(log_probs.exp() * log_probs).sum(dim=1)
    return _reduce(per_sample, reduction)


def information_maximization(logits: torch.Tensor) -> torch.Tensor:
    """The information-maximisation loss of SHOT (Liang et al., ICML 2020), lower is better.

    .. math:: \\mathcal{L}_{IM} = \\mathbb{E}_x\\, H(p(x)) - H(\\mathbb{E}_x\\, p(x))

    The first term wants each prediction confident, the second wants the predictions spread
    over the classes (it rules out collapsing everything onto one class). It equals minus the
    mutual information between input and predicted class over the batch, so it needs no labels
    and can score target-domain models for model selection.
    """
    probs = F.softmax(logits, dim=1)
    mean_prediction = probs.mean(dim=0, keepdim=True)
    return entropy(logits, reduction="mean") - entropy_of_probs(mean_prediction).squeeze(0)
