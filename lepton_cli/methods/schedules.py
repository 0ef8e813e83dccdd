"""Learning-rate schedules stepped once per optimisation step."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def inverse_decay(optimizer: Optimizer, gamma: float = 1e-3, power: float = 0.75) -> LambdaLR:
    """lr · (1 + γ·t)^(-p): the annealing of Ganin et al. 2016 that DANN, CDAN and MCC all use."""
    return LambdaLR(optimizer, lambda step: (1 + gamma * step) ** (-power))

