"""Minimum Class Confusion (Jin, Wang, Long & Wang, "Minimum Class Confusion for Versatile
Domain Adaptation", ECCV 2020), following TLlib's ``tllib/self_training/mcc.py``."""

import torch
import torch.nn.functional as F

from lepton_cli.losses.conditional import entropy_weights


def mcc_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """MCC loss on (unlabelled target) logits of shape ``(B, C)``.

    .. math::
        \\hat Y = \\mathrm{softmax}(Z / T), \\qquad
        W = \\mathrm{diag}\\Big(\\frac{B\\,(1 + e^{-H(\\hat y_i)})}
            {\\sum_{i'} (1 + e^{-H(\\hat y_{i'})})}\\Big), \\qquad
        C = \\hat Y^\\top W \\hat Y

    .. math::
        \\tilde C_{jj'} = C_{jj'} / \\textstyle\\sum_{j''} C_{jj''}, \\qquad
        \\mathcal{L}_{MCC} = \\frac1C \\sum_{j \\neq j'} \\tilde C_{jj'}
            = \\frac{\\textstyle\\sum \\tilde C - \\mathrm{tr}\\,\\tilde C}{C}

    Temperature scaling (the paper's :math:`T = 2.5`) softens over-confident predictions; the
    entropy weights (detached, averaging 1) let confident samples count more; the
    normalisation keeps large classes from dominating. The loss is 0 when each sample is
    predicted one-hot (no two classes ever confused) and grows when probability mass is shared
    between classes. (TLlib divides by ``C.sum(dim=1)`` with broadcasting, i.e. column-wise;
    :math:`C` is symmetric, so the loss is the same.)
    """
    num_classes = logits.shape[1]
    probs = F.softmax(logits / temperature, dim=1)
    weights = entropy_weights(probs).unsqueeze(1)
    confusion = (probs * weights).T @ probs
    confusion = confusion / confusion.sum(dim=1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / num_classes
