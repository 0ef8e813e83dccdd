"""Text and audio backbones: the shapes every method relies on, and padding that changes nothing."""

from __future__ import annotations

import pytest
import torch

from lepton_cli.errors import LeptonError
from lepton_cli.models.audio import LogMelCNN
from lepton_cli.models.heads import Classifier
from lepton_cli.models.text import BagOfTokens, ShallowMLP


def test_shallow_mlp_is_one_hidden_layer_of_sigmoid_units():
    model = ShallowMLP(input_dim=30, hidden=50)
    features = model(torch.randn(4, 30))
    assert features.shape == (4, 50) and model.num_features == 50
    assert ((features > 0) & (features < 1)).all()
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 1
    logits, _ = Classifier(model, 2, bottleneck_dim=None)(torch.randn(4, 30))  # the paper's net: a linear head on it
    assert logits.shape == (4, 2)
    with pytest.raises(LeptonError, match="data.input_dim must be a positive integer"):
        ShallowMLP(input_dim="auto")


def test_bag_of_tokens_ignores_padding_and_order():
    torch.manual_seed(0)
    model = BagOfTokens(input_dim=20, embedding_dim=8, hidden=16).eval()
    tokens = torch.tensor([[3, 5, 7, 0, 0]])
    same = torch.tensor([[7, 0, 3, 5, 0]])
    torch.testing.assert_close(model(tokens), model(same))
    torch.testing.assert_close(model(tokens), model(torch.tensor([[3, 5, 7]])))
    assert model(tokens).shape == (1, 16)


def test_log_mel_cnn_takes_any_spectrogram_size():
    model = LogMelCNN(channels=(4, 8))
    assert model(torch.randn(3, 1, 40, 101)).shape == (3, 8) and model(torch.randn(2, 1, 20, 26)).shape == (2, 8)
