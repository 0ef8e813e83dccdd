"""The LightningModule of an experiment config."""

from __future__ import annotations

from omegaconf import DictConfig, open_dict

from lepton_cli.builders.data import resolve_data_shape
from lepton_cli.schema.presets import apply_per_method

# Settings in conf/method/ that the builders read, not the method's constructor.
BUILDER_KEYS = ("teacher_epochs",)


def build_method(cfg: DictConfig, datamodule, **extra):
    """The LightningModule of `cfg.method`, on the student backbone, with the shared augmentations
    (and a frozen teacher for the methods that learn from one)."""
    from hydra.utils import get_class, instantiate

    resolve_data_shape(cfg, datamodule)
    apply_per_method(cfg)  # an experiment preset's settings for this method, before the teacher reads any
    if get_class(cfg.method._target_).needs_teacher(cfg.method):
        from lepton_cli.builders.teacher import build_teacher

        extra["teacher"] = build_teacher(cfg, datamodule)
    augment = instantiate(cfg.augment)
    method_cfg = cfg.method.copy()
    with open_dict(method_cfg):
        for key in BUILDER_KEYS:
            method_cfg.pop(key, None)
    return instantiate(method_cfg, backbone=instantiate(cfg.student), num_classes=len(datamodule.classes),
                       class_names=datamodule.classes, weak_augment=augment.weak, strong_augment=augment.strong,
                       **extra)
