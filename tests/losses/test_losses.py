"""The maths of the reusable loss pieces, checked against hand computations."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.losses import (
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    DomainDiscriminator,
    GradientReversal,
    RandomizedMultilinearMap,
    conditional_input_dim,
    dann_coefficient,
    entropy,
    entropy_weights,
    grad_reverse,
    information_maximization,
    kd_loss,
    mcc_loss,
    multilinear_map,
    vat_loss,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class ConstantLogit(nn.Module):
    """A discriminator that answers 0 (50/50) for every sample."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1, keepdim=True) * 0.0


class Sum(nn.Module):
    """A discriminator whose logit is the feature sum: no parameters, easy to reason about."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1, keepdim=True)


# --- gradient reversal -------------------------------------------------------------------------


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_grad_reverse_is_identity_forward_and_scales_gradient_by_minus_coeff(coeff):
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.equal(x.grad, -coeff * upstream)


def test_gradient_reversal_module_uses_its_settable_coeff():
    layer = GradientReversal()
    layer.coeff = 0.25
    x = torch.ones(2, 2, requires_grad=True)
    layer(x).sum().backward()
    assert torch.equal(x.grad, torch.full((2, 2), -0.25))


def test_dann_coefficient_schedule():
    assert dann_coefficient(0.0) == 0.0
    values = [dann_coefficient(p / 100) for p in range(101)]
    assert all(a < b for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(1.0, abs=1e-4)
    assert dann_coefficient(1.0, high=0.1) == pytest.approx(0.1, abs=1e-5)
    expected = 2 / (1 + math.exp(-10 * 0.3)) - 1
    assert dann_coefficient(0.3) == pytest.approx(expected)


# --- domain-adversarial ------------------------------------------------------------------------


def test_domain_loss_is_log2_when_discriminator_cannot_tell():
    loss_fn = DomainAdversarialLoss(ConstantLogit())
    loss = loss_fn(torch.randn(5, 3), torch.randn(7, 3))
    assert loss.item() == pytest.approx(math.log(2))
    assert loss_fn.domain_accuracy is not None and not loss_fn.domain_accuracy.requires_grad


def test_domain_loss_drops_when_discriminator_separates_domains():
    loss_fn = DomainAdversarialLoss(Sum())
    source, target = torch.full((4, 2), 3.0), torch.full((4, 2), -3.0)
    loss = loss_fn(source, target)
    assert loss.item() < 0.01
    assert loss_fn.domain_accuracy.item() == 1.0
    # Swapped, the discriminator is confidently wrong.
    assert loss_fn(target, source).item() > math.log(2)
    assert loss_fn.domain_accuracy.item() == 0.0


def test_domain_loss_reverses_gradient_into_features():
    source = torch.randn(6, 3, requires_grad=True)
    target = torch.randn(6, 3, requires_grad=True)
    loss_fn = DomainAdversarialLoss(Sum(), coeff=0.5)
    loss_fn(source, target).backward()

    plain_source = source.detach().clone().requires_grad_()
    plain_target = target.detach().clone().requires_grad_()
    plain_logits = torch.cat([plain_source, plain_target]).sum(dim=1)
    labels = torch.cat([torch.ones(6), torch.zeros(6)])
    plain = 0.5 * (
        F.binary_cross_entropy_with_logits(plain_logits[:6], labels[:6])
        + F.binary_cross_entropy_with_logits(plain_logits[6:], labels[6:])
    )
    plain.backward()
    torch.testing.assert_close(source.grad, -0.5 * plain_source.grad)
    torch.testing.assert_close(target.grad, -0.5 * plain_target.grad)


def test_domain_loss_sample_weights():
    loss_fn = DomainAdversarialLoss(Sum())
    source, target = torch.randn(3, 2), torch.randn(3, 2)
    source_weight = torch.tensor([2.0, 0.0, 1.0])
    target_weight = torch.tensor([1.0, 1.0, 1.0])
    loss = loss_fn(source, target, source_weight, target_weight)
    source_bce = F.binary_cross_entropy_with_logits(source.sum(1), torch.ones(3), reduction="none")
    target_bce = F.binary_cross_entropy_with_logits(target.sum(1), torch.zeros(3), reduction="none")
    expected = 0.5 * ((source_weight * source_bce).mean() + target_bce.mean())
    torch.testing.assert_close(loss, expected)


def test_domain_discriminator_outputs_one_logit_and_trains():
    discriminator = DomainDiscriminator(8, hidden=16)
    assert discriminator(torch.randn(5, 8)).shape == (5, 1)
    loss_fn = DomainAdversarialLoss(discriminator, coeff=0.0)
    optimiser = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    source, target = torch.randn(16, 8) + 2, torch.randn(16, 8) - 2
    first = loss_fn(source, target).item()
    for _ in range(20):
        optimiser.zero_grad()
        loss_fn(source, target).backward()
        optimiser.step()
    assert loss_fn(source, target).item() < first


# --- conditional (CDAN) ------------------------------------------------------------------------


def test_multilinear_map_is_the_flattened_outer_product():
    features, probs = torch.randn(4, 5), torch.softmax(torch.randn(4, 3), dim=1)
    mapped = multilinear_map(features, probs)
    assert mapped.shape == (4, 15)
    torch.testing.assert_close(mapped, torch.einsum("bc,bf->bcf", probs, features).reshape(4, -1))
    assert mapped[1, 2 * 5 + 3] == probs[1, 2] * features[1, 3]


def test_randomized_map_shape_buffers_and_formula():
    random_map = RandomizedMultilinearMap(6, 4, output_dim=32)
    features, probs = torch.randn(3, 6), torch.softmax(torch.randn(3, 4), dim=1)
    out = random_map(features, probs)
    assert out.shape == (3, 32)
    assert list(dict(random_map.named_parameters())) == []
    assert set(random_map.state_dict()) == {"features_projection", "probs_projection"}
    expected = (features @ random_map.features_projection) * (probs @ random_map.probs_projection)
    torch.testing.assert_close(out, expected / math.sqrt(32))


def test_conditional_input_dim_matches_auto_randomization():
    assert conditional_input_dim(64, 10) == 640
    assert conditional_input_dim(2048, 31) == 1024
    assert conditional_input_dim(2048, 31, randomized_dim=512) == 512
    assert conditional_input_dim(2048, 31, randomized=False) == 2048 * 31
    assert conditional_input_dim(4, 3, randomized=True, randomized_dim=8) == 8


def test_entropy_weights_average_one_and_favour_confident_samples():
    probs = torch.softmax(torch.randn(10, 5) * 3, dim=1)
    weights = entropy_weights(probs)
    torch.testing.assert_close(weights.mean(), torch.tensor(1.0))
    confident_first = entropy_weights(torch.tensor([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3]]))
    assert confident_first[0] > confident_first[1]


def test_cdan_loss_runs_with_real_discriminator_and_detaches_probs():
    features_dim, num_classes = 6, 3
    discriminator = DomainDiscriminator(conditional_input_dim(features_dim, num_classes), 16)
    loss_fn = ConditionalDomainAdversarialLoss(discriminator, features_dim, num_classes)
    source_features = torch.randn(4, features_dim, requires_grad=True)
    source_logits = torch.randn(4, num_classes, requires_grad=True)
    target_features = torch.randn(5, features_dim, requires_grad=True)
    target_logits = torch.randn(5, num_classes, requires_grad=True)
    loss = loss_fn(source_features, source_logits, target_features, target_logits)
    loss.backward()
    assert loss.item() > 0 and loss_fn.domain_accuracy is not None
    assert source_features.grad is not None and target_features.grad is not None
    assert source_logits.grad is None and target_logits.grad is None


def test_cdan_loss_is_weighted_bce_on_multilinear_map():
    loss_fn = ConditionalDomainAdversarialLoss(Sum(), 2, 3, entropy_conditioning=True)
    source_features, target_features = torch.randn(4, 2), torch.randn(4, 2)
    source_logits, target_logits = torch.randn(4, 3), torch.randn(4, 3)
    loss = loss_fn(source_features, source_logits, target_features, target_logits)
    source_probs, target_probs = source_logits.softmax(1), target_logits.softmax(1)
    source_logit = multilinear_map(source_features, source_probs).sum(1)
    target_logit = multilinear_map(target_features, target_probs).sum(1)
    source_bce = F.binary_cross_entropy_with_logits(source_logit, torch.ones(4), reduction="none")
    target_bce = F.binary_cross_entropy_with_logits(target_logit, torch.zeros(4), reduction="none")
    expected = 0.5 * (
        (entropy_weights(source_probs) * source_bce).mean()
        + (entropy_weights(target_probs) * target_bce).mean()
    )
    torch.testing.assert_close(loss, expected)


# --- entropy -----------------------------------------------------------------------------------


def test_entropy_of_uniform_and_one_hot_predictions():
    assert entropy(torch.zeros(3, 7)).item() == pytest.approx(math.log(7))
    one_hot_like = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 1000.0]])
    per_sample = entropy(one_hot_like, reduction="none")
    assert per_sample.shape == (2,)
    assert torch.isfinite(per_sample).all() and per_sample.max().item() < 1e-6


def test_entropy_matches_definition():
    logits = torch.randn(5, 4)
    probs = logits.softmax(1)
    expected = -(probs * probs.log()).sum(1)
    torch.testing.assert_close(entropy(logits, reduction="none"), expected)
    torch.testing.assert_close(entropy(logits, reduction="sum"), expected.sum())


def test_information_maximization_prefers_confident_and_diverse_predictions():
    confident_diverse = torch.eye(4) * 50
    collapsed = torch.zeros(4, 4)
    collapsed[:, 0] = 50
    uniform = torch.zeros(4, 4)
    assert information_maximization(confident_diverse).item() == pytest.approx(-math.log(4))
    assert information_maximization(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    assert information_maximization(uniform).item() == pytest.approx(0.0, abs=1e-6)


# --- distillation ------------------------------------------------------------------------------


def test_kd_loss_zero_for_equal_logits_and_matches_manual_computation():
    student, teacher = torch.randn(6, 5), torch.randn(6, 5)
    assert kd_loss(teacher, teacher, temperature=4.0).abs().item() < 1e-6
    for temperature in (1.0, 2.0, 4.0):
        p = (teacher / temperature).softmax(1)
        q = (student / temperature).softmax(1)
        manual = (p * (p.log() - q.log())).sum(1).mean() * temperature**2
        loss = kd_loss(student, teacher, temperature)
        assert loss.item() > 0
        torch.testing.assert_close(loss, manual)


def test_kd_loss_t_squared_makes_high_temperature_limit_logit_matching():
    # Hinton et al. 2015, section 2.1: as T grows, T^2 * KL tends to the squared distance
    # between zero-mean logits / (2C), independent of T; without T^2 it would vanish as 1/T^2.
    student = torch.randn(4, 5, dtype=torch.float64)
    teacher = torch.randn(4, 5, dtype=torch.float64)
    difference = (student - teacher) - (student - teacher).mean(1, keepdim=True)
    limit = (difference**2).sum(1).mean() / (2 * 5)
    for temperature in (100.0, 1000.0):
        torch.testing.assert_close(kd_loss(student, teacher, temperature), limit, rtol=2e-2, atol=0)


# --- class confusion ---------------------------------------------------------------------------


def _manual_mcc(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    batch_size, num_classes = logits.shape
    probs = torch.softmax(logits / temperature, dim=1)
    entropies = -(probs * torch.log(probs)).sum(1)
    weights = 1 + torch.exp(-entropies)
    weights = batch_size * weights / weights.sum()
    confusion = torch.zeros(num_classes, num_classes)
    for i in range(batch_size):
        confusion += weights[i] * torch.outer(probs[i], probs[i])
    for j in range(num_classes):
        confusion[j] = confusion[j] / confusion[j].sum()
    return (confusion.sum() - confusion.trace()) / num_classes


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_mcc_loss_matches_manual_implementation(temperature):
    logits = torch.randn(16, 6) * 2
    torch.testing.assert_close(mcc_loss(logits, temperature), _manual_mcc(logits, temperature))


def test_mcc_loss_zero_for_confident_distinct_classes_and_lower_than_uniform():
    confident = torch.eye(4).repeat(2, 1) * 200
    assert mcc_loss(confident).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(8, 4)
    assert mcc_loss(uniform).item() == pytest.approx(3 / 4)
    somewhat_confident = torch.eye(4).repeat(2, 1) * 5
    assert mcc_loss(somewhat_confident) < mcc_loss(uniform)


def test_mcc_loss_gradient_reaches_logits():
    logits = torch.randn(8, 4, requires_grad=True)
    mcc_loss(logits).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


# --- virtual adversarial -----------------------------------------------------------------------


def _small_classifier() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


def test_vat_loss_nonnegative_and_leaves_no_parameter_gradients():
    model = _small_classifier()
    x = torch.randn(5, 3, 2, 2)
    loss = vat_loss(model, x, model(x), eps=1.0, xi=1e-3, power_iterations=2)
    assert loss.item() >= 0 and loss.requires_grad
    assert all(p.grad is None for p in model.parameters())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vat_loss_zero_for_constant_forward_fn():
    x = torch.randn(4, 3, 2, 2)
    constant = torch.tensor([0.2, -1.0, 3.0])

    def forward_fn(inputs: torch.Tensor) -> torch.Tensor:
        return constant.expand(len(inputs), 3) + 0.0 * inputs.flatten(1).sum(1, keepdim=True)

    loss = vat_loss(forward_fn, x, forward_fn(x))
    assert loss.abs().item() < 1e-7


def test_vat_adversarial_direction_beats_random_direction():
    model = _small_classifier()
    x = torch.randn(32, 3, 2, 2)
    with torch.no_grad():
        clean_logits = model(x)
    adversarial = vat_loss(model, x, clean_logits, eps=0.5, xi=1e-3).item()
    random_direction = F.normalize(torch.randn(32, 12), dim=1).view_as(x) * 0.5
    random = F.kl_div(
        model(x + random_direction).log_softmax(1),
        clean_logits.log_softmax(1),
        reduction="batchmean",
        log_target=True,
    ).item()
    assert adversarial > random
