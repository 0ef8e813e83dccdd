"""Deep CORAL (Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
ECCV-W 2016), in the form DomainBed uses for domain generalisation (Gulrajani & Lopez-Paz 2021,
`domainbed/algorithms.py`, `CORAL.mmd`)."""

from __future__ import annotations

import itertools

import torch


def coral_penalty(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Distance between the first two moments of two feature batches (N, D) and (M, D):

        mean_k (μ_x − μ_y)_k² + mean_kl (C_x − C_y)_kl²,   C = (F − μ)ᵀ(F − μ) / (N − 1)

    (DomainBed's form: mean alignment plus the covariance term; the paper's loss is the covariance
    term alone, scaled by 1/4 instead of 1/D.)"""
    mean_x, mean_y = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
    centred_x, centred_y = x - mean_x, y - mean_y
    cov_x = centred_x.t() @ centred_x / (len(x) - 1)
    cov_y = centred_y.t() @ centred_y / (len(y) - 1)
    return (mean_x - mean_y).pow(2).mean() + (cov_x - cov_y).pow(2).mean()


def pairwise_coral(groups: list[torch.Tensor]) -> torch.Tensor:
    """The mean `coral_penalty` over every pair of feature groups (one per domain); groups with
    fewer than 2 rows have no covariance and are skipped; 0 when fewer than 2 groups remain."""
    groups = [group for group in groups if len(group) >= 2]
    pairs = list(itertools.combinations(groups, 2))
    if not pairs:
        return groups[0].new_zeros(()) if groups else torch.zeros(())
    return torch.stack([coral_penalty(x, y) for x, y in pairs]).mean()
