"""Knowledge distillation across domains (Hinton, Vinyals & Dean, "Distilling the Knowledge in a
Neural Network", 2015)."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses.distillation import kd_loss
from lepton_cli.methods.base import AdaptationMethod


class Distill(AdaptationMethod):
    """A frozen teacher's temperature-softened predictions on target (and, with
    `distill_source`, source) images train the student, next to cross-entropy on labelled source:

        loss = CE(student(x_s), y_s) + α · T² · KL(softmax(teacher(x)/T) || softmax(student(x)/T))

    Teacher and student may be different architectures. The teacher always sees the weakly augmented
    view; with `student_view: strong` the student sees a strongly augmented view of the target images
    (Noisy Student, Xie et al. 2020), so it must match the teacher under perturbation instead of
    copying it, which is how a student can correct some of its teacher's errors on target.
    Target labels are never read.
    """

    @classmethod
    def needs_teacher(cls, method_cfg) -> bool:
        return True

    def __init__(self, backbone: nn.Module, num_classes: int, teacher: nn.Module | None = None,
                 temperature: float = 4.0, alpha: float = 0.9, distill_source: bool = False,
                 student_view: str = "strong", **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        if teacher is None:
            raise LeptonError("Distill needs a frozen teacher: pass teacher=lepton_cli.builders.teacher.build_teacher(cfg, datamodule) "
                              "(lepton train builds it)")
        if temperature <= 0 or alpha < 0:
            raise LeptonError(f"method.temperature must be positive and method.alpha non-negative, got {temperature} and {alpha}")
        if student_view not in ("weak", "strong"):
            raise LeptonError(f"method.student_view must be weak or strong, got {student_view!r}")
        self.teacher = teacher
        self.use_teacher_normalization(teacher)
        self.student_view = student_view
        self.temperature, self.alpha, self.distill_source = temperature, alpha, distill_source

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        target_images, _ = batch["target"]  # the labels are never read
        source_view, target_view = self.view(source_images), self.view(target_images)
        student_target_view = target_view if self.student_view == "weak" else self.view(target_images, "strong")
        logits, _ = self.model(torch.cat([source_view, student_target_view]))
        classification = self.source_loss(logits[: len(source_images)], source_labels)
        if self.distill_source:
            distillation = kd_loss(logits, self.teacher(self.for_teacher(torch.cat([source_view, target_view]))),
                                   self.temperature)
        else:
            distillation = kd_loss(logits[len(source_images):], self.teacher(self.for_teacher(target_view)), self.temperature)
        loss = classification + self.alpha * distillation
        self.log_losses(loss=loss, classification=classification, distillation=distillation)
        return loss
