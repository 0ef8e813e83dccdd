"""DANN's discriminator depth (`method.hidden_layers`): 0 is the paper's logistic-regression domain
classifier of the shallow Amazon-reviews network, 2 stays TLlib's default."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses import DomainDiscriminator
from tests.conftest import compose_config
from tests.data.text_audio_fakes import modality_overrides


def test_zero_hidden_layers_is_logistic_regression():
    discriminator = DomainDiscriminator(50, hidden=1024, hidden_layers=0)
    assert [type(m) for m in discriminator] == [nn.Linear]
    assert sum(p.numel() for p in discriminator.parameters()) == 50 + 1  # hidden is unused
    features = torch.randn(6, 50)
    expected = features @ discriminator[0].weight.T + discriminator[0].bias
    assert torch.equal(discriminator(features), expected)


@pytest.mark.parametrize("hidden_layers", [1, 2, 3])
def test_depth_counts_hidden_layers_and_two_is_the_default(hidden_layers):
    discriminator = DomainDiscriminator(8, hidden=16, hidden_layers=hidden_layers)
    linears = [m for m in discriminator if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16)] + [(16, 16)] * (hidden_layers - 1) + [(16, 1)]
    assert discriminator(torch.randn(4, 8)).shape == (4, 1)
    default = DomainDiscriminator(8, hidden=16)
    assert [type(m) for m in default] == [type(m) for m in DomainDiscriminator(8, hidden=16, hidden_layers=2)]


def test_dann_trains_with_a_logistic_regression_discriminator(tmp_path):
    from lepton_cli.train import run

    overrides = [*modality_overrides("features", tmp_path / "data"), "method=dann", "method.hidden_layers=0",
                 "trainer.fast_dev_run=true", "data.batch_size=8", "logger=none", "report=false"]
    cfg = compose_config(overrides, tmp_path / "run")
    assert cfg.method.hidden_layers == 0
    metrics = run(cfg)
    assert metrics["steps"] == 1 and 0.0 <= metrics["target/acc"] <= 1.0


def test_negative_depth_is_one_clear_error(tmp_path):
    from lepton_cli.schema import validate

    cfg = compose_config(["method=dann", "method.hidden_layers=-1"], tmp_path / "run")
    with pytest.raises(LeptonError, match="method.hidden_layers.*>= 0"):
        validate(cfg, on_this_machine=False)
