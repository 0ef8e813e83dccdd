"""Adversarial examples under an L∞ budget: FGSM (Goodfellow, Shlens & Szegedy, "Explaining and
Harnessing Adversarial Examples", ICLR 2015) and PGD (Madry et al., "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018).

The attack works in the un-normalised image space, float in [0, 1] (uint8 inputs are divided by
255): `eps` is in those units (8/255 ≈ 0.031 is the usual budget for natural images), and every
example stays a valid image. `logits_of` is any callable from such images to logits (a Lepton
method's `forward` normalises inside; `lepton eval` composes the checkpoint's normalisation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lepton_cli.data.augment import as_unit_range
from lepton_cli.errors import LeptonError

ATTACKS = ("fgsm", "pgd")
DEFAULT_PGD_STEPS = 10


def check_attack(eps: float, steps: int, step_size: float | None = None) -> None:
    """One line for a budget that makes no sense."""
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= 1:
        raise LeptonError(f"attack.eps must be in (0, 1] (image values are in [0, 1]; e.g. 0.1, or 8/255 = 0.031), got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise LeptonError(f"attack.steps must be a whole number >= 1 (1: FGSM, more: PGD), got {steps!r}")
    if step_size is not None and (isinstance(step_size, bool) or not isinstance(step_size, int | float) or step_size <= 0):
        raise LeptonError(f"attack.step_size must be positive (or null: 2.5 · eps / steps), got {step_size!r}")


def _logits(output) -> torch.Tensor:
    """Logits from a model's output: a tensor, or the first item of (logits, features)."""
    return output[0] if isinstance(output, tuple | list) else output


def adversarial_examples(logits_of: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                         eps: float, steps: int = 1, step_size: float | None = None) -> torch.Tensor:
    """Images that raise the cross-entropy of `labels` within ‖x' − x‖∞ ≤ eps, in [0, 1]:

    .. math::
        x_{t+1} = \\Pi_{[0,1] \\cap B_\\infty(x, \\epsilon)}\\big(x_t + \\alpha \\,
            \\mathrm{sign}\\, \\nabla_{x_t} \\mathrm{CE}(f(x_t), y)\\big), \\qquad x_0 = x

    One step with α = ε is FGSM; more steps are PGD with α = `step_size`, by default 2.5·ε/steps
    (Madry et al.: enough to reach the boundary of the ball from anywhere inside). PGD starts at x,
    not at a random point, so the result is deterministic. Returns float images in [0, 1]; the
    model's parameters get no gradient (it is not switched to eval mode: do that first).
    """
    check_attack(eps, steps, step_size)
    clean = as_unit_range(images).detach()
    alpha = eps if steps == 1 else (step_size if step_size is not None else 2.5 * eps / steps)
    low, high = (clean - eps).clamp(0, 1), (clean + eps).clamp(0, 1)
    adversarial = clean.clone()
    for _ in range(steps):
        adversarial.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(_logits(logits_of(adversarial)), labels)
            (gradient,) = torch.autograd.grad(loss, adversarial)
        adversarial = torch.max(torch.min(adversarial.detach() + alpha * gradient.sign(), high), low)
    return adversarial.detach()
