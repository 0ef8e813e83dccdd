"""The data module of an experiment config."""

from __future__ import annotations

from omegaconf import DictConfig, open_dict


def build_datamodule(cfg: DictConfig):
    from hydra.utils import get_class, instantiate

    method_class = get_class(cfg.method._target_)
    # Target test is validated every epoch for the oracle's column of the tables (labelled as such):
    # the checkpoint monitor and sweeps use the selection= validator, which scores held-out target
    # train (data.target_val_fraction) and never reads these labels.
    return instantiate(cfg.data, source=instantiate(cfg.source), target=instantiate(cfg.target),
                       target_labels_per_class=cfg.method.get("labels_per_class"),
                       use_target_train=method_class.uses_target_train, validate_target_test=True)


def resolve_data_shape(cfg: DictConfig, datamodule) -> None:
    """Load the data and write the image size and channels it settled on (`auto`) into the config,
    so that backbones and the saved config see numbers."""
    datamodule.setup()
    with open_dict(cfg):
        cfg.data.image_size, cfg.data.channels = datamodule.image_size, datamodule.channels
