"""Text backbones: the DANN paper's shallow network on bag-of-words vectors, and a bag of token
embeddings. Both map the text view (`data.augment.FeatureDropout` / `TokenDropout`) to a feature
vector of width `num_features`, like every backbone."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.models.backbones import load_backbone_weights

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or value < 1:
        raise LeptonError(f"{name} must be a positive integer, got {value!r} (data.input_dim is set from the data: "
                          "leave it at auto)")
    return value


def _start_from(backbone: nn.Module, checkpoint: str | None) -> None:
    """`checkpoint`: a Lepton or plain state_dict file to start from (then the backbone counts as
    trained: `backbone_lr_mult` 0.1 by default), as `SmallCNN` does."""
    backbone.is_pretrained = bool(checkpoint)
    if checkpoint:
        load_backbone_weights(backbone, checkpoint)


class ShallowMLP(nn.Module):
    """One hidden layer: Linear(input_dim → hidden) and an activation, the representation DANN's
    domain classifier and label classifier share in the Amazon experiments (Ganin et al. 2016,
    §5.1.1: a hidden layer of 50 sigmoid units on the 5,000 features; `conf/backbone/text_mlp.yaml`).
    The paper's label classifier is a linear layer on it: run with `method.bottleneck_dim=null`."""

    modality = "features"

    def __init__(self, input_dim: int, hidden: int = 50, activation: str = "sigmoid", dropout: float = 0.0,
                 checkpoint: str | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise LeptonError(f"text_mlp activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.layers = nn.Sequential(nn.Linear(_positive("data.input_dim", input_dim), _positive("hidden", hidden)),
                                    ACTIVATIONS[activation](), nn.Dropout(dropout))
        self.num_features = hidden
        _start_from(self, checkpoint)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class BagOfTokens(nn.Module):
    """The mean of the token embeddings of a review (padding, id 0, left out), then one hidden
    layer: a deep averaging network (Iyyer et al., ACL 2015), no attention, no order. `input_dim`
    is the vocabulary size, padding included, that the run built from source and target train."""

    modality = "tokens"

    def __init__(self, input_dim: int, embedding_dim: int = 64, hidden: int = 128, dropout: float = 0.0,
                 checkpoint: str | None = None):
        super().__init__()
        self.embedding = nn.EmbeddingBag(_positive("data.input_dim", input_dim), _positive("embedding_dim", embedding_dim),
                                         mode="mean", padding_idx=0)
        self.layers = nn.Sequential(nn.Linear(embedding_dim, _positive("hidden", hidden)), nn.ReLU(), nn.Dropout(dropout))
        self.num_features = hidden
        _start_from(self, checkpoint)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.is_floating_point():  # VADA's VAT adds a continuous perturbation to its input
            raise LeptonError("VAT (method=vada) needs float inputs to perturb, and token ids have none; use the "
                              "bag-of-words data sets: source=amazon/... target=amazon/... augment=text student=text_mlp")
        return self.layers(self.embedding(tokens))
