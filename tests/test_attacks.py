"""FGSM and PGD (`lepton_cli.losses.attacks`, `lepton_cli.api.adversarial_examples`) and
`api.pseudo_labels`: the loss goes up, the budget and the image range hold, and the model is left
as it was."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli import api
from lepton_cli.errors import LeptonError
from lepton_cli.losses.attacks import adversarial_examples


@pytest.fixture
def model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))
    images = torch.rand(8, 3, 2, 2)
    labels = model(images).argmax(1)  # the attack has something to break
    return model, images, labels


@pytest.mark.parametrize("steps", [1, 5])
def test_attacks_increase_the_loss_within_eps_and_the_image_range(model_and_batch, steps):
    model, images, labels = model_and_batch
    eps = 0.1
    adversarial = api.adversarial_examples(model, images, labels, eps, steps=steps)
    assert (adversarial - images).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(adversarial), labels) > F.cross_entropy(model(images), labels)
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # put back in the mode it was in


def test_pgd_raises_the_loss_at_least_as_much_as_fgsm_and_uint8_is_read_as_pixels(model_and_batch):
    model, images, labels = model_and_batch
    with torch.no_grad():
        fgsm = F.cross_entropy(model(adversarial_examples(model, images, labels, 0.05)), labels, reduction="sum")
        pgd = F.cross_entropy(model(adversarial_examples(model, images, labels, 0.05, steps=20)), labels, reduction="sum")
    assert pgd >= fgsm - 1e-5
    pixels = torch.tensor([[[[0, 255], [128, 3]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    adversarial = adversarial_examples(model, pixels, labels[:1], 0.02)
    assert (adversarial - pixels.float() / 255).abs().max() <= 0.02 + 1e-6


def test_fgsm_on_a_linear_model_is_the_sign_of_the_hand_computed_gradient():
    weight = torch.tensor([[1.0, -2.0], [0.5, 1.0]])
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(weight)
    x, y = torch.tensor([[0.5, 0.5]]), torch.tensor([0])
    # d CE / d x = (softmax(Wx) - onehot(y)) W
    logits = [sum(weight[k, j].item() * x[0, j].item() for j in range(2)) for k in range(2)]
    total = sum(torch.tensor(logits).exp())
    residual = [torch.tensor(logits[k]).exp() / total - (1.0 if k == 0 else 0.0) for k in range(2)]
    gradient = [sum(residual[k] * weight[k, j] for k in range(2)) for j in range(2)]
    expected = torch.tensor([[0.5 + 0.1 * (1 if g > 0 else -1) for g in gradient]])
    torch.testing.assert_close(adversarial_examples(model, x, y, 0.1), expected)


@pytest.mark.parametrize(("eps", "steps", "message"), [(0.0, 1, "attack.eps"), (2.0, 1, "attack.eps"), (0.1, 0, "attack.steps")])
def test_bad_budgets_are_one_line_errors(model_and_batch, eps, steps, message):
    model, images, labels = model_and_batch
    with pytest.raises(LeptonError, match=message):
        api.adversarial_examples(model, images, labels, eps, steps=steps)
    with pytest.raises(LeptonError, match=r"\[0, 1\]"):
        api.adversarial_examples(model, images * 255, labels, 0.1)  # already scaled to [0, 255]


def test_pseudo_labels_keep_the_confident_predictions():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 9.0]])

    class Fixed(nn.Module):
        def forward(self, images):
            return logits, torch.zeros(3, 5)  # (logits, features), as a Classifier answers

    model = Fixed().train()
    labels, mask = api.pseudo_labels(model, torch.zeros(3, 1, 2, 2), threshold=0.9)
    assert labels.tolist() == [0, 1, 2]
    # softmax confidence: e^4/(e^4+2) = 0.965, 0.35, ≈ 1
    assert mask.tolist() == [True, False, True] and model.training
    assert api.pseudo_labels(model, torch.zeros(3, 1, 2, 2), threshold=0.0)[1].all()
    with pytest.raises(LeptonError, match="threshold must be a probability"):
        api.pseudo_labels(model, torch.zeros(3, 1, 2, 2), threshold=1.5)
