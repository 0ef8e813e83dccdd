"""MixStyle (Zhou, Yang, Qiao & Xiang, "Domain Generalization with MixStyle", ICLR 2021), as in the
authors' code (KaiyangZhou/mixstyle-release, `imcls/models/mixstyle.py`): mix the per-instance
channel statistics of early feature maps between images, so the network sees new "styles"."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.errors import LeptonError

MIXES = ("random", "crossdomain")


def mixstyle(features: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Re-style each feature map (N, C, ...) with statistics mixed with those of image `partner[i]`:

        MixStyle(x) = γ_mix · (x − μ(x)) / σ(x) + β_mix,
        γ_mix = λ σ(x) + (1 − λ) σ(x[partner]),   β_mix = λ μ(x) + (1 − λ) μ(x[partner])

    μ, σ per instance and channel over the spatial dimensions, not differentiated through (the
    authors detach them); `lam` (N,) per instance."""
    dims = tuple(range(2, features.dim()))
    mean = features.mean(dims, keepdim=True).detach()
    std = (features.var(dims, keepdim=True) + eps).sqrt().detach()
    lam = lam.view(-1, *[1] * (features.dim() - 1)).to(features.dtype)
    normalised = (features - mean) / std
    return normalised * (lam * std + (1 - lam) * std[partner]) + lam * mean + (1 - lam) * mean[partner]


def mixing_partners(domain_index: torch.Tensor | None, batch_size: int, mix: str, generator=None) -> torch.Tensor:
    """A partner for each image: a random permutation (`random`), or for `crossdomain` a random image
    of another domain (the authors split the batch in two domain halves and swap them; with a
    domain index per image this is the same idea for any number of domains). Without a second
    domain in the batch, `crossdomain` falls back to `random`."""
    device = domain_index.device if domain_index is not None else None
    permutation = torch.randperm(batch_size, generator=generator, device=device)
    if mix == "random" or domain_index is None or len(torch.unique(domain_index)) < 2:
        return permutation
    partner = permutation.clone()
    for domain in torch.unique(domain_index):
        mine, others = domain_index == domain, torch.nonzero(domain_index != domain).flatten()
        choice = torch.randint(len(others), (int(mine.sum()),), generator=generator, device=device)
        partner[mine] = others[choice]
    return partner


class MixStyle(nn.Module):
    """MixStyle after the modules named in `layers` (paths in `model`, e.g. `backbone.features.2`),
    through forward hooks (nothing in the model's `forward` changes): in training, with probability
    `p` per forward and layer, each image's output statistics are mixed with λ ~ Beta(α, α).
    Identity in evaluation. `domain_index` (set before each forward) drives `crossdomain`."""

    def __init__(self, model: nn.Module, layers: list[str], p: float = 0.5, alpha: float = 0.1, mix: str = "random",
                 eps: float = 1e-6):
        super().__init__()
        if mix not in MIXES:
            raise LeptonError(f"method.mix must be one of {', '.join(MIXES)}, got {mix!r}")
        if not 0.0 <= p <= 1.0 or alpha <= 0:
            raise LeptonError(f"method.p must be in [0, 1] and method.alpha positive, got {p} and {alpha}")
        named = dict(model.named_modules())
        unknown = [layer for layer in layers if layer not in named or not layer]
        if unknown or not layers:
            choices = ", ".join(name for name in named if name)[:600]
            raise LeptonError(f"method.layers: no module named {', '.join(unknown) or '(empty list)'} in the model; "
                              f"choose from: {choices}")
        self.p, self.mix, self.eps = p, mix, eps
        self.beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
        self.domain_index: torch.Tensor | None = None
        self.handles = [named[layer].register_forward_hook(self._hook) for layer in layers]

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training or not self.training or torch.rand(()) > self.p or len(output) < 2:
            return None  # None: the output as it is
        domains = self.domain_index if self.domain_index is not None and len(self.domain_index) == len(output) else None
        partner = mixing_partners(domains, len(output), self.mix).to(output.device)
        lam = self.beta.sample((len(output),)).to(output.device)
        return mixstyle(output, partner, lam, self.eps)
