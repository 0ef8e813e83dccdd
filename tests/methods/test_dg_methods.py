"""Domain generalisation: erm, mldg, coral and mixstyle run end to end on pooled sources, never
read target training images, and their pieces match hand computations; the existing methods
accept pooled sources unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses import MixStyle, coral_penalty, meta_test_loss, mixstyle, pairwise_coral
from lepton_cli.losses.mixstyle import mixing_partners
from lepton_cli.methods import MLDG
from lepton_cli.models.backbones import SmallCNN
from tests.data.fake_files import write_mnist, write_usps
from tests.methods.leakage import assert_bitwise_equal, build, train_weights

DG_METHODS = ["erm", "mldg", "coral", "mixstyle"]
CALLED_WITHOUT_TRAINER = pytest.mark.filterwarnings("ignore:You are trying to `self.log")


@pytest.fixture(scope="module")
def dg_base(tmp_path_factory) -> list[str]:
    """Three tiny sources (rendered, scikit-learn's and fake USPS files) and fake MNIST as the unseen
    target; mnist is listed among the domains too, to be left out as the target."""
    root = tmp_path_factory.mktemp("digit_files")
    write_mnist(root)
    write_usps(root)
    return ["source=multi", "source.domains=[synth_digits,digits,usps,mnist]",
            "source.settings={synth_digits: {train_size: 300, test_size: 100}}", "target=mnist", f"data.root={root}",
            "data.batch_size=12", "data.eval_batch_size=128", "data.steps_per_epoch=4", "trainer.max_epochs=1",
            "logger=none", "report=false"]


@pytest.mark.parametrize("method", [*DG_METHODS, "dann", "finetune"])
def test_methods_run_fast_dev_run_on_pooled_sources(run_experiment, dg_base, method):
    metrics, _ = run_experiment(*dg_base, f"method={method}", "trainer.fast_dev_run=true", tiny=False)
    assert metrics["method"] == method and metrics["steps"] == 1 and metrics["target"] == "mnist"
    assert 0.0 <= metrics["target/acc"] <= 1.0


@pytest.mark.slow  # two short trainings each
@pytest.mark.parametrize("method", DG_METHODS)
def test_dg_methods_never_read_target_training_images(dg_base, method):
    datamodule, _ = build([f"method={method}"], base=dg_base)
    assert set(datamodule.train_dataloader()) == {"source"}
    assert datamodule.source.domain_names == ["synth_digits", "digits", "usps"]  # the target left out
    honest = train_weights([f"method={method}"], False, base=dg_base)
    noise = train_weights([f"method={method}"], False, base=dg_base, replace_target_train_images=True)
    assert_bitwise_equal(honest, noise)


@pytest.mark.slow
def test_the_image_check_catches_a_method_that_reads_target_images(dg_base):
    # CORAL aligned to the target reads its images: the same check must see it.
    overrides = ["method=coral", "method.target_alignment=true"]
    honest = train_weights(overrides, False, base=dg_base)
    noise = train_weights(overrides, False, base=dg_base, replace_target_train_images=True)
    with pytest.raises(AssertionError, match="weights depend"):
        assert_bitwise_equal(honest, noise)


# ---- MLDG -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("first_order", [False, True])
def test_mldg_gradient_matches_a_hand_computation_on_a_linear_model(first_order):
    # F(w) = ½(w·a − b)², G(w) = ½(w·c − d)², w' = w − α∇F(w); total = F(w) + β G(w')
    w0, a, b, c, d = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 2.0]), 0.3, torch.tensor([-1.0, 0.5]), 1.2
    alpha, beta = 0.1, 0.7
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(w0.view(1, 2))
    meta_train = 0.5 * (model(a.view(1, 2)).squeeze() - b) ** 2
    meta_test = meta_test_loss(model, meta_train, lambda forward: 0.5 * (forward(c.view(1, 2)).squeeze() - d) ** 2,
                               alpha, first_order)
    (meta_train + beta * meta_test).backward()

    grad_f = (w0 @ a - b) * a
    w1 = w0 - alpha * grad_f
    residual = w1 @ c - d
    assert meta_test.item() == pytest.approx(0.5 * float(residual) ** 2)
    # d G(w')/dw = (I − α ∇²F)ᵀ ∇G(w'), ∇²F = a aᵀ; first order drops the Hessian term
    grad_g = residual * (c if first_order else c - alpha * (a @ c) * a)
    assert torch.allclose(model.weight.grad.flatten(), grad_f + beta * grad_g, atol=1e-6)


@CALLED_WITHOUT_TRAINER
def test_mldg_step_needs_the_domain_index_and_holds_out_whole_domains():
    method = MLDG(SmallCNN(), 10)
    images, labels = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (8,))
    with pytest.raises(LeptonError, match="several source domains"):
        method.training_step({"source": (images, labels)}, 0)
    with pytest.raises(LeptonError, match="too few"):
        method.training_step({"source": (images, labels), "source_domain": torch.zeros(8, dtype=torch.long)}, 0)
    loss = method.training_step({"source": (images, labels), "source_domain": torch.arange(8) % 2}, 0)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in method.model.parameters())


# ---- CORAL ------------------------------------------------------------------------------------------
def test_coral_penalty_is_the_mean_and_covariance_distance_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1), covariance [[2, 2], [2, 2]]
    y = torch.tensor([[3.0, 0.0], [3.0, 2.0]])  # mean (3, 1), covariance [[0, 0], [0, 2]]
    # mean term: ((−2)² + 0²) / 2 = 2; covariance term: (2² + 2² + 2² + 0²) / 4 = 3
    assert float(coral_penalty(x, y)) == pytest.approx(5.0)
    assert float(coral_penalty(x, x)) == 0.0
    z = x + 1.0  # same covariance as x, mean (2, 2): CORAL(x, z) = 1, CORAL(y, z) = (1 + 1)/2 + 3 = 4
    assert float(pairwise_coral([x, y, z])) == pytest.approx((5.0 + 1.0 + 4.0) / 3)
    assert float(pairwise_coral([x, torch.ones(1, 2)])) == 0.0  # one row has no covariance: no pair left


# ---- MixStyle ---------------------------------------------------------------------------------------
def test_mixstyle_mixes_instance_statistics_by_hand():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 4, 4) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1) + torch.tensor([0.0, 5.0]).view(2, 1, 1, 1)
    partner = torch.tensor([1, 0])
    assert torch.allclose(mixstyle(features, partner, torch.ones(2)), features, atol=1e-4)  # λ = 1: unchanged
    mixed = mixstyle(features, partner, torch.tensor([0.25, 0.25]))
    mean, std = features.mean((2, 3)), (features.var((2, 3)) + 1e-6).sqrt()
    assert torch.allclose(mixed.mean((2, 3)), 0.25 * mean + 0.75 * mean[partner], atol=1e-4)
    assert torch.allclose((mixed.var((2, 3)) + 1e-6).sqrt(), 0.25 * std + 0.75 * std[partner], atol=1e-3)


def test_crossdomain_partners_come_from_another_domain():
    domains = torch.tensor([0, 0, 0, 1, 2, 2])
    for _ in range(20):
        assert (domains[mixing_partners(domains, 6, "crossdomain")] != domains).all()


def test_mixstyle_hooks_change_training_forwards_only_and_check_layer_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    images = torch.randn(6, 1, 8, 8)
    plain_train, plain_eval = model(images), model.eval()(images)
    layer = MixStyle(model, ["1"], p=1.0, alpha=0.1)
    model.train()
    assert not torch.allclose(model(images), plain_train)
    model.eval()
    assert torch.equal(model(images), plain_eval)  # identity at evaluation
    with pytest.raises(LeptonError, match="no module named backbone.nope"):
        MixStyle(model, ["backbone.nope"])
    for handle in layer.handles:
        handle.remove()
