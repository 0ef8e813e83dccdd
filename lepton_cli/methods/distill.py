"""Knowledge distillation across domains (Hinton, Vinyals & Dean, "Distilling the Knowledge in a
Neural Network", 2015), with optional feature-level terms (FitNets hints, attention transfer, RKD)
and an optional adaptation term on the student (MCC)."""

from __future__ import annotations

import torch
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.losses.class_confusion import mcc_loss
from lepton_cli.losses.distillation import kd_loss
from lepton_cli.losses.feature_distillation import FEATURE_LOSSES, LayerOutput, build_feature_loss
from lepton_cli.methods.base import AdaptationMethod

ADAPT_TERMS = ("none", "mcc")


class Distill(AdaptationMethod):
    """A frozen teacher's temperature-softened predictions on target (and, with
    `distill_source`, source) images train the student, next to cross-entropy on labelled source:

        loss = CE(student(x_s), y_s) + α · T² · KL(softmax(teacher(x)/T) || softmax(student(x)/T))
               [+ feature_weight · L_feature(student layer, teacher layer)]   feature_loss: hints | attention | rkd
               [+ adapt_weight · L_MCC(student(x_t))]                          adapt: mcc

    Teacher and student may be different architectures of different widths. The feature term
    compares the output of `student_layer` with that of `teacher_layer` (module names inside each
    backbone, read through forward hooks; null: the backbone's pooled features) on the same images
    as the logit term (see `lepton_cli.losses.feature_distillation`).

    The teacher always sees the weakly augmented view; with `student_view: strong` the student sees
    a strongly augmented view of the target images (Noisy Student, Xie et al. 2020), so it must
    match the teacher under perturbation instead of copying it, which is how a student can correct
    some of its teacher's errors on target. Target labels are never read.

    `input_shape` (C, H, W) is the image shape used once to measure the two layers' outputs (a
    hint regressor needs their widths); by default the teacher's `input_shape` (set by
    `lepton_cli.builders.teacher.build_teacher`).
    """

    @classmethod
    def needs_teacher(cls, method_cfg) -> bool:
        return True

    def __init__(self, backbone: nn.Module, num_classes: int, teacher: nn.Module | None = None,
                 temperature: float = 4.0, alpha: float = 0.9, distill_source: bool = False,
                 student_view: str = "strong", feature_loss: str = "none", feature_weight: float = 1.0,
                 teacher_layer: str | None = None, student_layer: str | None = None, adapt: str = "none",
                 adapt_weight: float = 1.0, adapt_temperature: float = 2.5,
                 input_shape: tuple[int, int, int] | None = None, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        if teacher is None:
            raise LeptonError("Distill needs a frozen teacher: pass teacher=lepton_cli.builders.teacher.build_teacher(cfg, datamodule) "
                              "(lepton train builds it)")
        if temperature <= 0 or alpha < 0 or feature_weight < 0 or adapt_weight < 0:
            raise LeptonError("method.temperature must be positive and method.alpha, feature_weight, adapt_weight "
                              f"non-negative, got {temperature}, {alpha}, {feature_weight}, {adapt_weight}")
        if student_view not in ("weak", "strong"):
            raise LeptonError(f"method.student_view must be weak or strong, got {student_view!r}")
        if feature_loss not in FEATURE_LOSSES:
            raise LeptonError(f"method.feature_loss must be one of {', '.join(FEATURE_LOSSES)}, got {feature_loss!r}")
        if adapt not in ADAPT_TERMS:
            raise LeptonError(f"method.adapt must be one of {', '.join(ADAPT_TERMS)}, got {adapt!r}")
        self.teacher = teacher
        self.use_teacher_normalization(teacher)
        self.student_view = student_view
        self.temperature, self.alpha, self.distill_source = temperature, alpha, distill_source
        self.feature_weight, self.adapt, self.adapt_weight = feature_weight, adapt, adapt_weight
        self.adapt_temperature = adapt_temperature
        self.feature_loss: nn.Module | None = None
        if feature_loss != "none":
            self._hook_layers(feature_loss, teacher_layer, student_layer, input_shape or getattr(teacher, "input_shape", None))

    def _hook_layers(self, kind: str, teacher_layer: str | None, student_layer: str | None,
                     input_shape: tuple[int, int, int] | None) -> None:
        teacher_backbone = getattr(getattr(self.teacher, "classifier", None), "backbone", None)
        if teacher_backbone is None:
            raise LeptonError("a feature loss needs a teacher with a backbone (a FrozenTeacher over a Classifier, as "
                              "build_teacher makes); set method.feature_loss=none")
        if input_shape is None:
            raise LeptonError("a feature loss needs the image shape to measure the layers: pass input_shape=(C, H, W) to Distill")
        self.teacher_features = LayerOutput(teacher_backbone, teacher_layer or "", "method.teacher_layer")
        self.student_features = LayerOutput(self.model.backbone, student_layer or "", "method.student_layer")
        # One forward of blank images in eval mode (no batch-norm update) gives the two layers' shapes.
        probe = torch.zeros(2, *input_shape)
        was_training = self.model.training
        with torch.no_grad():
            self.model.eval()(self.as_input(probe))
            self.teacher(self.for_teacher(self.as_input(probe)))
        self.model.train(was_training)
        student_shape, teacher_shape = self.student_features.pop().shape, self.teacher_features.pop().shape
        self.feature_loss = build_feature_loss(kind, student_shape, teacher_shape)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source_images, source_labels = batch["source"]
        target_images, _ = batch["target"]  # the labels are never read
        source_view, target_view = self.view(source_images), self.view(target_images)
        student_target_view = target_view if self.student_view == "weak" else self.view(target_images, "strong")
        logits, _ = self.model(torch.cat([source_view, student_target_view]))
        classification = self.source_loss(logits[: len(source_images)], source_labels)
        # The images both models are compared on: target, or source and target.
        compared = slice(None) if self.distill_source else slice(len(source_images), None)
        teacher_view = torch.cat([source_view, target_view]) if self.distill_source else target_view
        distillation = kd_loss(logits[compared], self.teacher(self.for_teacher(teacher_view)), self.temperature)
        loss = classification + self.alpha * distillation
        losses = {"classification": classification, "distillation": distillation}
        if self.feature_loss is not None:
            losses["feature"] = self.feature_loss(self.student_features.pop()[compared], self.teacher_features.pop())
            loss = loss + self.feature_weight * losses["feature"]
        if self.adapt == "mcc":
            losses["class_confusion"] = mcc_loss(logits[len(source_images):], self.adapt_temperature)
            loss = loss + self.adapt_weight * losses["class_confusion"]
        self.log_losses(loss=loss, **losses)
        return loss
