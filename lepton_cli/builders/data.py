"""The data module of an experiment config."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict


def build_datamodule(cfg: DictConfig):
    from hydra.utils import get_class, instantiate

    from lepton_cli.data.multi_source import MultiSourceDomain

    method_class = get_class(cfg.method._target_)
    source, target = instantiate(cfg.source), instantiate(cfg.target)
    if isinstance(source, MultiSourceDomain):  # the target is unseen: never one of the sources
        source = source.leave_out(target.name)
    # Target test is validated every epoch for the oracle's column of the tables (labelled as such):
    # the checkpoint monitor and sweeps use the selection= validator, which scores held-out target
    # train (data.target_val_fraction) and never reads these labels.
    return instantiate(cfg.data, source=source, target=target,
                       target_labels_per_class=cfg.method.get("labels_per_class"),
                       use_target_train=method_class.reads_target_train(cfg.method), validate_target_test=True)


def resolve_data_shape(cfg: DictConfig, datamodule) -> None:
    """Load the data and write the image size and channels (images) or the input width (text,
    audio) it settled on (`auto`) into the config, so that backbones and the saved config see
    numbers; refuse augmentations and backbones made for another modality."""
    from hydra.utils import get_class

    from lepton_cli.data.modality import check_components

    datamodule.setup()
    roles = ["augment.weak", "augment.strong", "student"]
    if get_class(cfg.method._target_).needs_teacher(cfg.method) and cfg.method.get("init") != "source":
        roles.append("teacher")  # fine-tuning's "teacher" is the student's architecture (builders/teacher.py)
    modality = getattr(datamodule, "modality", None) or "image"
    check_components(modality, {role: OmegaConf.select(cfg, role)._target_ for role in roles})
    with open_dict(cfg):
        cfg.data.image_size, cfg.data.channels = datamodule.image_size, datamodule.channels
        cfg.data.input_dim = getattr(datamodule, "input_dim", "auto")
