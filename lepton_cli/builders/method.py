"""The LightningModule of an experiment config."""

from __future__ import annotations

from omegaconf import DictConfig

from lepton_cli.builders.data import resolve_data_shape


def build_method(cfg: DictConfig, datamodule, **extra):
    """The LightningModule of `cfg.method`, on the student backbone, with the shared augmentations
    (and a frozen teacher for the methods that learn from one)."""
    from hydra.utils import get_class, instantiate

    resolve_data_shape(cfg, datamodule)
    if get_class(cfg.method._target_).needs_teacher(cfg.method):
        from lepton_cli.builders.teacher import build_teacher

        extra["teacher"] = build_teacher(cfg, datamodule)
    augment = instantiate(cfg.augment)
    return instantiate(cfg.method, backbone=instantiate(cfg.student), num_classes=len(datamodule.classes),
                       class_names=datamodule.classes, weak_augment=augment.weak, strong_augment=augment.strong,
                       **extra)
