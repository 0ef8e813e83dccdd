"""Feature-level knowledge distillation: the student matches what the teacher computes inside,
not only what it outputs. Three families, one module each, plus the forward hook that fetches an
intermediate layer's output by its module name (torchdistill's `forward_hook.py` idea).

- `HintLoss`: FitNets (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015);
- `AttentionTransferLoss`: attention transfer (Zagoruyko & Komodakis, "Paying More Attention to
  Attention", ICLR 2017);
- `RelationalLoss`: relational KD, distance + angle (Park, Kim, Lu & Cho, "Relational Knowledge
  Distillation", CVPR 2019).

Teacher features are fixed targets: every loss detaches them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.errors import LeptonError

FEATURE_LOSSES = ("none", "hints", "attention", "rkd")


class HintLoss(nn.Module):
    """FitNets hints: a learned regressor r maps the student's feature to the teacher's width,

    .. math::
        \\mathcal{L}_{hint} = \\frac{1}{N} \\sum \\big(r(s) - t\\big)^2

    (the mean over every element: batch, channels and positions). r is a 1×1 convolution for
    feature maps (B, C, H, W) and a linear layer for vectors (B, D), trained with the student. When
    the maps' sides differ, r(s) is resized to the teacher's (bilinear). FitNets' ½·sum is
    replaced by the mean so that the weight does not depend on the layer's size.
    """

    def __init__(self, student_channels: int, teacher_channels: int, maps: bool):
        super().__init__()
        self.regressor = (nn.Conv2d(student_channels, teacher_channels, kernel_size=1) if maps
                          else nn.Linear(student_channels, teacher_channels))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        adapted = self.regressor(student)
        if adapted.ndim == 4 and adapted.shape[-2:] != teacher.shape[-2:]:
            adapted = F.interpolate(adapted, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        return F.mse_loss(adapted, teacher.detach())


def attention_map(features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The spatial attention of feature maps (B, C, H, W): the channel mean of A², resized to `size`
    (bilinear) when given, flattened and L2-normalised per sample → (B, H·W)."""
    attention = features.pow(2).mean(dim=1, keepdim=True)
    if size is not None and attention.shape[-2:] != tuple(size):
        attention = F.interpolate(attention, size=size, mode="bilinear", align_corners=False)
    return F.normalize(attention.flatten(1), dim=1)


class AttentionTransferLoss(nn.Module):
    """Attention transfer (activation-based, p = 2): with Q = vec(mean_c A_c²) per sample,

    .. math::
        \\mathcal{L}_{AT} = \\frac{1}{B\\,HW} \\sum_b \\Big\\| \\frac{Q_S^b}{\\|Q_S^b\\|_2}
            - \\frac{Q_T^b}{\\|Q_T^b\\|_2} \\Big\\|_2^2

    as in the authors' code (`(at(x) - at(y)).pow(2).mean()`). The channel counts need not match
    (the maps are averaged over channels, so there is nothing to learn); when the sides differ the
    student's map is resized to the teacher's before normalising. Needs feature maps, not vectors.
    """

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.ndim != 4 or teacher.ndim != 4:
            raise LeptonError("feature_loss=attention needs convolutional feature maps (B, C, H, W) on both sides; pick "
                              "such layers with method.teacher_layer= and method.student_layer= (e.g. layer3, features.3)")
        target = attention_map(teacher.detach())
        return (attention_map(student, size=teacher.shape[-2:]) - target).pow(2).mean()


def _pairwise_distances(features: torch.Tensor) -> torch.Tensor:
    """(B, B) Euclidean distances; the diagonal is exactly 0 (and no NaN gradient through it)."""
    squared = (features.unsqueeze(0) - features.unsqueeze(1)).pow(2).sum(-1)
    off_diagonal = ~torch.eye(len(features), dtype=torch.bool, device=features.device)
    return torch.where(off_diagonal, squared.clamp_min(1e-12).sqrt(), torch.zeros_like(squared))


def _angles(features: torch.Tensor) -> torch.Tensor:
    """(B, B, B): cos∠(x_i, x_j, x_k) = ⟨e_ji, e_jk⟩ with e_ji the unit vector from x_j to x_i
    (at index [j, i, k]; entries where j = i or j = k are 0)."""
    differences = F.normalize(features.unsqueeze(0) - features.unsqueeze(1), dim=2)  # [j, i] = x_i - x_j
    return torch.bmm(differences, differences.transpose(1, 2))


class RelationalLoss(nn.Module):
    """Relational KD, distance and angle (RKD-DA), on features flattened to vectors (B, D):

    .. math::
        \\psi_D(x_i, x_j) = \\frac{\\|x_i - x_j\\|_2}{\\mu}, \\qquad
        \\mu = \\frac{1}{B(B-1)} \\sum_{i \\neq j} \\|x_i - x_j\\|_2

    .. math::
        \\psi_A(x_i, x_j, x_k) = \\Big\\langle \\frac{x_i - x_j}{\\|x_i - x_j\\|_2},
            \\frac{x_k - x_j}{\\|x_k - x_j\\|_2} \\Big\\rangle

    .. math::
        \\mathcal{L}_{RKD} = w_D \\operatorname{mean}_{i \\neq j} \\ell_\\delta\\big(\\psi_D(s_i, s_j), \\psi_D(t_i, t_j)\\big)
            + w_A \\operatorname{mean}_{i, j, k \\text{ distinct}} \\ell_\\delta\\big(\\psi_A(s_i, s_j, s_k), \\psi_A(t_i, t_j, t_k)\\big)

    with :math:`\\ell_\\delta` the Huber (smooth L1, δ = 1) loss. Only relations between samples are
    matched, so the widths of student and teacher need not agree and nothing is learned besides
    the student. The paper's weights are 25 and 50; the default (1, 2) keeps their ratio and leaves
    the scale to `method.feature_weight`. Needs at least 3 samples.
    """

    def __init__(self, distance_weight: float = 1.0, angle_weight: float = 2.0):
        super().__init__()
        self.distance_weight, self.angle_weight = distance_weight, angle_weight

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        student, teacher = student.flatten(1), teacher.detach().flatten(1)
        size = len(student)
        if size < 3:
            raise LeptonError(f"feature_loss=rkd compares triplets of samples and got a batch of {size}; use data.batch_size >= 3")
        eye = torch.eye(size, dtype=torch.bool, device=student.device)
        pairs = ~eye
        distance = F.smooth_l1_loss(self._normalised_distances(student)[pairs],
                                    self._normalised_distances(teacher)[pairs])
        triplets = pairs.unsqueeze(2) & pairs.unsqueeze(1) & ~eye.unsqueeze(0)  # [j, i, k]: j ≠ i, j ≠ k, i ≠ k
        angle = F.smooth_l1_loss(_angles(student)[triplets], _angles(teacher)[triplets])
        return self.distance_weight * distance + self.angle_weight * angle

    @staticmethod
    def _normalised_distances(features: torch.Tensor) -> torch.Tensor:
        distances = _pairwise_distances(features)
        size = len(features)
        return distances / (distances.sum() / (size * (size - 1))).clamp_min(1e-12)


def build_feature_loss(kind: str, student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module | None:
    """The loss module of `method.feature_loss=kind` for features of these (probe) shapes; None for
    `none`. Hints learn a regressor from the student's channels to the teacher's."""
    if kind == "none":
        return None
    if kind == "hints":
        maps = len(student_shape) == 4 and len(teacher_shape) == 4
        if len(student_shape) != len(teacher_shape):
            raise LeptonError(f"feature_loss=hints needs two feature maps or two vectors, got a {len(student_shape)}-D student "
                              f"feature and a {len(teacher_shape)}-D teacher feature; choose matching layers with "
                              "method.student_layer= and method.teacher_layer=")
        return HintLoss(student_shape[1], teacher_shape[1], maps)
    if kind == "attention":
        if len(student_shape) != 4 or len(teacher_shape) != 4:
            raise LeptonError("feature_loss=attention needs convolutional feature maps on both sides, but a layer gives "
                              "vectors; pick such layers with method.teacher_layer= and method.student_layer= "
                              "(e.g. layer3 for a ResNet, features.3 for small_cnn)")
        return AttentionTransferLoss()
    if kind == "rkd":
        return RelationalLoss()
    raise LeptonError(f"method.feature_loss must be one of {', '.join(FEATURE_LOSSES)}, got {kind!r}")


class LayerOutput:
    """The output of one submodule, by its name in `model.named_modules()`, kept at each forward
    through a forward hook (so no model's `forward` is rewritten). The empty name is `model` itself."""

    def __init__(self, model: nn.Module, name: str, where: str):
        modules = dict(model.named_modules())
        if name not in modules:
            shown = [n for n in modules if n and n.count(".") <= 1]
            raise LeptonError(f"{where}={name!r} is not a layer of that backbone; choose one of: {', '.join(shown[:60])}"
                              + (" ..." if len(shown) > 60 else "") + " (or null: the backbone's output)")
        self.output: torch.Tensor | None = None
        self.handle = modules[name].register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs, output) -> None:
        self.output = output[0] if isinstance(output, (tuple, list)) else output

    def pop(self) -> torch.Tensor:
        """The output of the last forward; forgotten so it is never used twice or kept alive."""
        output, self.output = self.output, None
        if output is None:
            raise RuntimeError("the hooked layer did not run in the last forward")
        return output
