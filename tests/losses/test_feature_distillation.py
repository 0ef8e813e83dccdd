"""FitNets hints, attention transfer and RKD against hand computations (explicit loops over tiny
tensors, not the vectorised code under test), and the forward hook that fetches a layer by name."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses.feature_distillation import (
    AttentionTransferLoss,
    HintLoss,
    LayerOutput,
    RelationalLoss,
    build_feature_loss,
)


def huber(a: float, b: float) -> float:
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


# --- FitNets hints -----------------------------------------------------------------------------


def test_hints_on_vectors_regress_the_student_to_the_teacher_width():
    loss = HintLoss(2, 3, maps=False)
    with torch.no_grad():
        loss.regressor.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        loss.regressor.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    student = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    teacher = torch.tensor([[0.0, 5.0, 2.0], [3.0, 0.0, 0.0]])
    # r(s): [1, 5, 2] and [3, -1, 1]; squared errors 1+0+0 and 0+1+1 over 6 elements
    assert loss(student, teacher).item() == pytest.approx(3 / 6)


def test_hints_on_maps_use_a_1x1_convolution_and_resize_to_the_teacher():
    loss = HintLoss(2, 1, maps=True)
    with torch.no_grad():
        loss.regressor.weight.copy_(torch.tensor([[[[2.0]], [[-1.0]]]]))
        loss.regressor.bias.zero_()
    student = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]]])  # (1, 2, 2, 2)
    teacher = torch.zeros(1, 1, 2, 2)
    expected = sum((2 * a - 1.0) ** 2 for a in (1.0, 2.0, 3.0, 4.0)) / 4
    assert loss(student, teacher).item() == pytest.approx(expected)
    # A 1×1 student map is constant after bilinear resizing to the teacher's 2×2.
    small = torch.tensor([[[[3.0]], [[1.0]]]])
    teacher = torch.tensor([[[[5.0, 4.0], [6.0, 5.0]]]])
    assert loss(small, teacher).item() == pytest.approx((0 + 1 + 1 + 0) / 4)


def test_hint_gradients_reach_the_student_and_the_regressor_but_not_the_teacher():
    loss = HintLoss(4, 6, maps=True)
    student = torch.randn(2, 4, 3, 3, requires_grad=True)
    teacher = torch.randn(2, 6, 3, 3, requires_grad=True)
    loss(student, teacher).backward()
    assert student.grad is not None and loss.regressor.weight.grad is not None and teacher.grad is None


# --- attention transfer ------------------------------------------------------------------------


def hand_attention(features: list[list[list[float]]]) -> list[float]:
    """Channel mean of squares per position, flattened, L2-normalised: by loops."""
    channels, height, width = len(features), len(features[0]), len(features[0][0])
    q = [sum(features[c][h][w] ** 2 for c in range(channels)) / channels for h in range(height) for w in range(width)]
    norm = math.sqrt(sum(v * v for v in q))
    return [v / norm for v in q]


def test_attention_transfer_matches_the_hand_computation_with_different_channel_counts():
    student = [[[1.0, 0.0], [2.0, 1.0]], [[1.0, 3.0], [0.0, 1.0]]]  # 2 channels
    teacher = [[[0.5, 1.0], [1.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]], [[2.0, 1.0], [1.0, 0.0]]]  # 3 channels
    qs, qt = hand_attention(student), hand_attention(teacher)
    expected = sum((a - b) ** 2 for a, b in zip(qs, qt, strict=True)) / 4
    loss = AttentionTransferLoss()(torch.tensor([student]), torch.tensor([teacher]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert AttentionTransferLoss()(torch.tensor([teacher]) * 3, torch.tensor([teacher])).item() == pytest.approx(0.0, abs=1e-12)


def test_attention_maps_of_other_sizes_are_resized_to_the_teachers():
    student = torch.full((1, 4, 1, 1), 2.0)  # one position: uniform attention after resizing to 2×2
    teacher = [[[1.0, 2.0], [0.0, 2.0]]]
    qt = hand_attention(teacher)
    expected = sum((0.5 - b) ** 2 for b in qt) / 4
    assert AttentionTransferLoss()(student, torch.tensor([teacher])).item() == pytest.approx(expected, rel=1e-6)


def test_attention_transfer_refuses_vectors_in_one_line():
    with pytest.raises(LeptonError, match="needs convolutional feature maps"):
        AttentionTransferLoss()(torch.randn(2, 8), torch.randn(2, 8))
    with pytest.raises(LeptonError, match="teacher_layer"):
        build_feature_loss("attention", torch.Size([2, 8]), torch.Size([2, 8, 4, 4]))


# --- relational KD -----------------------------------------------------------------------------


def hand_rkd(s: list[list[float]], t: list[list[float]], w_d: float, w_a: float) -> float:
    n = len(s)

    def dist(x, i, j):
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(x[i], x[j], strict=True)))

    def cos(x, i, j, k):  # angle at j between x_i and x_k
        u = [a - b for a, b in zip(x[i], x[j], strict=True)]
        v = [a - b for a, b in zip(x[k], x[j], strict=True)]
        return sum(a * b for a, b in zip(u, v, strict=True)) / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))

    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    mu_s = sum(dist(s, i, j) for i, j in pairs) / len(pairs)
    mu_t = sum(dist(t, i, j) for i, j in pairs) / len(pairs)
    distance = sum(huber(dist(s, i, j) / mu_s, dist(t, i, j) / mu_t) for i, j in pairs) / len(pairs)
    triplets = list(itertools.permutations(range(n), 3))
    angle = sum(huber(cos(s, i, j, k), cos(t, i, j, k)) for i, j, k in triplets) / len(triplets)
    return w_d * distance + w_a * angle


def test_rkd_distance_and_angle_match_the_hand_computation():
    student = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    teacher = [[0.0, 0.0, 1.0], [3.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, -2.0, 0.5]]  # another width
    loss = RelationalLoss(distance_weight=1.0, angle_weight=2.0)(torch.tensor(student), torch.tensor(teacher))
    assert loss.item() == pytest.approx(hand_rkd(student, teacher, 1.0, 2.0), rel=1e-5)
    only_distance = RelationalLoss(1.0, 0.0)(torch.tensor(student), torch.tensor(teacher)).item()
    assert only_distance == pytest.approx(hand_rkd(student, teacher, 1.0, 0.0), rel=1e-5) and only_distance > 0


def test_rkd_is_zero_for_a_scaled_rotated_copy_and_flattens_maps():
    teacher = torch.randn(5, 3)
    rotation = torch.linalg.qr(torch.randn(3, 3))[0]
    assert RelationalLoss()(3.0 * teacher @ rotation, teacher).item() == pytest.approx(0.0, abs=1e-6)
    maps = torch.randn(5, 2, 2, 2, requires_grad=True)
    RelationalLoss()(maps, torch.randn(5, 7)).backward()  # finite gradients through the zero diagonal
    assert torch.isfinite(maps.grad).all()
    with pytest.raises(LeptonError, match="batch_size >= 3"):
        RelationalLoss()(torch.randn(2, 3), torch.randn(2, 3))


# --- layers by name ----------------------------------------------------------------------------


def test_layer_output_keeps_the_named_layers_output_and_lists_names_when_unknown():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(3, 5, 1), nn.ReLU()))
    images = torch.randn(2, 1, 5, 5)
    expected = net[2][0](net[1](net[0](images)))
    tap = LayerOutput(net, "2.0", "method.student_layer")
    net(images)
    torch.testing.assert_close(tap.pop(), expected)
    with pytest.raises(RuntimeError):
        tap.pop()  # used once
    whole = LayerOutput(net, "", "method.student_layer")
    output = net(images)
    assert whole.pop() is output
    with pytest.raises(LeptonError, match=r"method.teacher_layer='layer9' is not a layer .* choose one of: 0, 1, 2, 2.0, 2.1"):
        LayerOutput(net, "layer9", "method.teacher_layer")
