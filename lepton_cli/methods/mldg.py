"""Meta-Learning Domain Generalisation, MLDG (Li, Yang, Song & Hospedales, "Learning to
Generalize: Meta-Learning for Domain Generalization", AAAI 2018)."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses.meta_learning import meta_test_loss
from lepton_cli.methods.base import AdaptationMethod
from lepton_cli.methods.vada import batch_norm_stats_frozen


class MLDG(AdaptationMethod):
    """Each step splits the source domains of the batch at random into meta-train and meta-test
    (`meta_test_domains` of them, the paper's V), takes one SGD step of size `inner_lr` on the
    meta-train loss F and adds the meta-test loss G at the updated weights (Algorithm 1):

        loss = F(θ) + β · G(θ − α ∇F(θ))

    second order through `torch.func.functional_call` (the paper), or `first_order=true`
    (DomainBed's MLDG: the inner gradient is a constant, no Hessian-vector product).

    Batch norm (the bottleneck's; the digit CNN has none) normalises each forward with its own
    batch statistics, meta-train and meta-test apart, as in DomainBed, where the meta-train and
    meta-test batches go through the network separately. The running statistics that evaluation
    uses follow the meta-train forwards at θ only: the forward at θ' leaves them alone (DomainBed
    runs it on a throwaway copy of the network). Needs at least two source domains
    (`source=multi`); the target is never read.
    """

    uses_target_train = False

    def __init__(self, backbone: nn.Module, num_classes: int, inner_lr: float = 0.01, beta: float = 1.0,
                 first_order: bool = False, meta_test_domains: int = 1, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        if inner_lr <= 0 or beta < 0 or meta_test_domains < 1:
            raise LeptonError(f"method.inner_lr must be positive, method.beta non-negative and "
                              f"method.meta_test_domains at least 1, got {inner_lr}, {beta} and {meta_test_domains}")
        self.inner_lr, self.beta = inner_lr, beta
        self.first_order, self.meta_test_domains = first_order, meta_test_domains

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images, labels = batch["source"]
        if "source_domain" not in batch:
            raise LeptonError("mldg needs several source domains: e.g. source=multi source.domains=[mnist,usps,synth_digits]")
        domains = batch["source_domain"]
        present = torch.unique(domains)
        if len(present) <= self.meta_test_domains:
            raise LeptonError(f"mldg: a batch holds {len(present)} source domain(s), too few to hold out "
                              f"method.meta_test_domains={self.meta_test_domains} and still meta-train; use more "
                              "source domains, a larger data.batch_size, or source.balanced=true")
        held = present[torch.randperm(len(present), device=present.device)[: self.meta_test_domains]]
        is_test = torch.isin(domains, held)
        views = self.view(images)
        meta_train = self.source_loss(self.model(views[~is_test])[0], labels[~is_test])

        def at_updated_weights(forward) -> torch.Tensor:
            return self.source_loss(forward(views[is_test])[0], labels[is_test])

        with batch_norm_stats_frozen(self.model):
            meta_test = meta_test_loss(self.model, meta_train, at_updated_weights, self.inner_lr, self.first_order)
        loss = meta_train + self.beta * meta_test
        self.log_losses(loss=loss, meta_train=meta_train, meta_test=meta_test)
        return loss
