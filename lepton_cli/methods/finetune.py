"""Supervised transfer to the target: fine-tune a source-trained (or pretrained) model on a few
labelled target images per class (Yosinski et al., "How transferable are features in deep neural
networks?", 2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lepton_cli.errors import LeptonError
from lepton_cli.methods.base import AdaptationMethod

INITS = ("source", "scratch", "pretrained")


class FineTune(AdaptationMethod):
    """Cross-entropy on `labels_per_class` labelled target images per class (plus
    `source_weight` × cross-entropy on labelled source).

    The model starts from (`init`): `source`, the student architecture trained on the labelled
    source first (Lepton trains and caches it like a teacher); `scratch`, random weights;
    `pretrained`, the student backbone's own weights (`student.pretrained=true` for timm's ImageNet
    weights). `freeze_backbone` trains only the bottleneck and head. The backbone learns at
    `backbone_lr_mult` × lr: by default (None) 0.1 when it starts trained (`source`, `pretrained`)
    and 1.0 from `scratch`.
    """

    target_labels_per_class = 10

    @classmethod
    def needs_teacher(cls, method_cfg) -> bool:
        return method_cfg.get("init", "source") == "source"  # the "teacher" is the source-trained student

    def __init__(self, backbone: nn.Module, num_classes: int, labels_per_class: int = 10, init: str = "source",
                 source_weight: float = 0.0, freeze_backbone: bool = False, teacher: nn.Module | None = None,
                 student_pretrained: bool | None = None, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        if init not in INITS:
            raise LeptonError(f"method.init must be one of {', '.join(INITS)}, got {init!r}")
        if labels_per_class is None or labels_per_class < 1:
            raise LeptonError(f"method.labels_per_class must be at least 1, got {labels_per_class}")
        if init == "pretrained" and student_pretrained is False:
            raise LeptonError("method.init=pretrained needs pretrained student weights: set student.pretrained=true "
                              "(a timm backbone), or use method.init=source or scratch")
        if init == "scratch" and student_pretrained:
            raise LeptonError("method.init=scratch contradicts student.pretrained=true; use method.init=pretrained")
        self.target_labels_per_class = labels_per_class
        self.init = init
        self.source_weight, self.freeze_backbone = source_weight, freeze_backbone
        if init == "source":
            if teacher is None:
                raise LeptonError("method.init=source needs the source-trained model: pass "
                                  "teacher=lepton_cli.builders.teacher.build_teacher(cfg, datamodule) (lepton train builds it)")
            try:
                self.model.load_state_dict(getattr(teacher, "classifier", teacher).state_dict())
            except RuntimeError as error:
                raise LeptonError(f"the source-trained model does not fit the student ({str(error).splitlines()[0]}); "
                                  "check student= and method.bottleneck_dim") from None
        if freeze_backbone:
            self.model.backbone.requires_grad_(False)

    @property
    def backbone_starts_trained(self) -> bool:
        return self.init != "scratch" or super().backbone_starts_trained

    def train(self, mode: bool = True) -> FineTune:
        super().train(mode)
        if self.freeze_backbone:
            self.model.backbone.eval()  # a frozen backbone keeps its batch-norm statistics and no dropout
        return self

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        target_images, target_labels = batch["target"]
        if batch_idx == 0 and bool((target_labels < 0).any()):
            raise LeptonError("fine-tuning needs labelled target images: build the DataModule with "
                              "target_labels_per_class=k (lepton train does so from method.labels_per_class)")
        target_logits, _ = self.model(self.view(target_images))
        target = F.cross_entropy(target_logits, target_labels)
        terms = {"target": target}
        loss = target
        if self.source_weight > 0:
            source_images, source_labels = batch["source"]
            source_logits, _ = self.model(self.view(source_images))
            terms["source"] = source = self.source_loss(source_logits, source_labels)
            loss = loss + self.source_weight * source
        self.log_losses(loss=loss, **terms)  # one call: `last_losses` holds this step's terms
        return loss
