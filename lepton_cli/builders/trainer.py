"""The Lightning Trainer of an experiment config, with Lepton's callbacks and checkpoint I/O."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def build_trainer(cfg: DictConfig, run_dir: Path, selection):
    """`cfg.trainer` as a Trainer: the configured callbacks, the model-selection callback
    `selection`, the reliability callbacks, the report callback (`report=true`), the loggers, and
    checkpoints written atomically and read with weights_only=True."""
    from hydra.utils import instantiate

    from lepton_cli.callbacks import ReportCallback, reliability_callbacks
    from lepton_cli.checkpoints import atomic_checkpoint_io
    from lepton_cli.distributed import prepare_trainer_config
    from lepton_cli.speed import trainer_arguments

    # The validator's score drives the checkpoint callback's monitor (conf/callbacks/default.yaml).
    callbacks = [*instantiate(cfg.callbacks).values(), selection, *reliability_callbacks(run_dir)]
    if cfg.get("report", False):
        # A fast_dev_run (trainer=debug) checks that a setup runs: its report skips the slow t-SNE.
        callbacks.append(ReportCallback(run_dir / "report", tsne_points=0 if cfg.trainer.get("fast_dev_run") else 1000))
    prepare_trainer_config(cfg)
    return instantiate(trainer_arguments(cfg.trainer), logger=instantiate(cfg.logger) or False,
                       callbacks=callbacks, plugins=[atomic_checkpoint_io()])
