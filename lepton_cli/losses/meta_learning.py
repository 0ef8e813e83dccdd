"""The meta-test term of MLDG (Li, Yang, Song & Hospedales, "Learning to Generalize: Meta-Learning
for Domain Generalization", AAAI 2018), independent of any training loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call


def meta_test_loss(model: nn.Module, meta_train_loss: torch.Tensor, meta_test_loss_at: Callable[[Callable], torch.Tensor],
                   inner_lr: float, first_order: bool = False) -> torch.Tensor:
    """G(θ') with θ' = θ − α ∇_θ F(θ): the meta-test loss at the weights after one SGD step of size
    α = `inner_lr` on the meta-train loss F = `meta_train_loss` (computed with `model` at θ).

    `meta_test_loss_at(forward)` computes the meta-test loss, calling `forward(*inputs)` in place of
    `model(*inputs)`; forward runs `model` at θ' through `torch.func.functional_call` (buffers as
    they are). Its gradient with respect to θ is

        second order:  (I − α ∇²F(θ)) ∇G(θ')      (the paper's; backprop through the inner step)
        first order:   ∇G(θ')                      (`first_order=True`: the inner gradient is a
                                                    constant, as in DomainBed's MLDG)

    Parameters without `requires_grad`, or that F does not use, take no inner step."""
    names = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    parameters = [parameter for name, parameter in model.named_parameters() if parameter.requires_grad]
    # retain_graph: the caller still backpropagates F itself (the total is F + β·G).
    grads = torch.autograd.grad(meta_train_loss, parameters, create_graph=not first_order, retain_graph=True,
                                allow_unused=True)
    updated = {name: parameter if grad is None else parameter - inner_lr * (grad.detach() if first_order else grad)
               for name, parameter, grad in zip(names, parameters, grads)}

    def forward(*inputs: Any) -> Any:
        return functional_call(model, updated, inputs)

    return meta_test_loss_at(forward)
