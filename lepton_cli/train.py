"""`lepton train`: compose the config → build data, model and trainer → fit → test → report.

This module is the Hydra application; `lepton train ARGS` runs `python -m lepton_cli.train ARGS`
so that Lightning's DDP launcher can restart the same module with the same arguments on each rank.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from lepton_cli.config import conf_dir, rewrite_overrides
from lepton_cli.distributed import launcher_overrides
from lepton_cli.errors import LeptonError
from lepton_cli.overrides import check_overrides, split_flags

log = logging.getLogger("lepton")


def resolve_data_shape(cfg: DictConfig, datamodule) -> None:
    """Load the data and write the image size and channels it settled on (`auto`) into the config,
    so that backbones and the saved config see numbers."""
    datamodule.setup()
    with open_dict(cfg):
        cfg.data.image_size, cfg.data.channels = datamodule.image_size, datamodule.channels


def build_method(cfg: DictConfig, datamodule, **extra):
    """The LightningModule of `cfg.method`, on the student backbone, with the shared augmentations
    (and a frozen teacher for the methods that learn from one)."""
    from hydra.utils import get_class, instantiate

    resolve_data_shape(cfg, datamodule)
    if get_class(cfg.method._target_).needs_teacher(cfg.method):
        from lepton_cli.teacher import build_teacher

        extra["teacher"] = build_teacher(cfg, datamodule)
    augment = instantiate(cfg.augment)
    return instantiate(cfg.method, backbone=instantiate(cfg.student), num_classes=len(datamodule.classes),
                       class_names=datamodule.classes, weak_augment=augment.weak, strong_augment=augment.strong,
                       **extra)


def build_datamodule(cfg: DictConfig):
    from hydra.utils import get_class, instantiate

    method_class = get_class(cfg.method._target_)
    return instantiate(cfg.data, source=instantiate(cfg.source), target=instantiate(cfg.target),
                       target_labels_per_class=cfg.method.get("labels_per_class"),
                       use_target_train=method_class.uses_target_train)


def run(cfg: DictConfig) -> dict:
    """Train and evaluate one experiment; returns the metrics written to `metrics.json`."""
    import pytorch_lightning as pl
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from lepton_cli import safety
    from lepton_cli.distributed import log_scale, prepare_trainer_config
    from lepton_cli.reporting.tables import print_metrics
    from lepton_cli.speed import apply_speed_options, trainer_arguments

    started = time.time()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    resume = cfg.get("resume")
    safety.check_run_dir(run_dir, resuming=bool(resume))
    safety.validate(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    resolve_data_shape(cfg, datamodule)
    safety.check_student_checkpoint_fits(cfg)
    log.info("%s → %s: %s; %d px, %d channel(s)", cfg.source.name, cfg.target.name, datamodule.alignment.describe(),
             datamodule.image_size, datamodule.channels)
    method = build_method(cfg, datamodule)
    method.run_config = OmegaConf.to_container(cfg, resolve=True)

    from lepton_cli.callbacks import ReportCallback, SelectionCallback

    # The validator's score drives the checkpoint callback's monitor (conf/callbacks/default.yaml).
    selection = SelectionCallback(instantiate(cfg.selection))
    callbacks = [*instantiate(cfg.callbacks).values(), selection, *safety.safety_callbacks(run_dir)]
    if cfg.get("report", False):
        callbacks.append(ReportCallback(run_dir / "report"))
    prepare_trainer_config(cfg)
    trainer: pl.Trainer = instantiate(trainer_arguments(cfg.trainer), logger=instantiate(cfg.logger) or False,
                                      callbacks=callbacks, plugins=[safety.atomic_checkpoint_io()])
    apply_speed_options(method, cfg.trainer, trainer.strategy.root_device.type == "cuda", datamodule.channels)
    log_scale(trainer, cfg, datamodule)
    if trainer.is_global_zero:
        safety.write_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    # resume=DIR: continue from DIR's last checkpoint (weights, optimiser, loop position, random state)
    ckpt_path = str(safety.last_checkpoint(Path(resume).expanduser().resolve())) if resume else None
    trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path)
    # The last epoch's weights are tested: choosing an epoch by target test accuracy would leak labels.
    trainer.test(method, datamodule=datamodule, verbose=False)

    metrics = {**method.test_results, "classes": datamodule.classes, "alignment": datamodule.alignment.as_dict(),
               "method": cfg.method.name, "source": cfg.source.name, "target": cfg.target.name, "seed": cfg.seed,
               "steps": trainer.global_step, "wall_time_s": round(time.time() - started, 2),
               **selection.summary()}  # the validator's pick (and the oracle's) beside the last weights' numbers
    if trainer.is_global_zero:
        write_json_atomically(run_dir / "metrics.json", metrics)
        if cfg.get("report", False):
            from lepton_cli.reporting.report import write_run_report

            write_run_report(run_dir)
        print_metrics(metrics, datamodule.classes, title=f"{cfg.source.name} → {cfg.target.name}, {cfg.method.name}")
        log.info("run directory: %s", run_dir)
    return metrics


def write_json_atomically(path: Path, data: dict) -> None:
    from lepton_cli.safety import write_atomically

    write_atomically(path, json.dumps(data, indent=2))


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    from hydra.errors import InstantiationException

    try:
        metrics = run(cfg)
    except LeptonError as error:
        exit_with(error)
    except InstantiationException as error:  # a LeptonError raised in a constructor Hydra called
        from lepton_cli.safety import unwrap_instantiation_error

        cause = unwrap_instantiation_error(error)
        if cause is None:
            raise
        exit_with(cause)
    return metrics.get("target/acc")  # what an Optuna sweeper maximises


def exit_with(error: LeptonError) -> None:
    if os.environ.get("LEPTON_DEBUG") == "1":
        raise error
    print(f"lepton: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def main() -> None:
    from lepton_cli.safety import prepare_args

    args = rewrite_overrides(sys.argv[1:])
    try:
        args = prepare_args(args)  # resume=DIR → its overrides + hydra.run.dir=DIR; unusable run dirs
        check_overrides(args)
    except LeptonError as error:
        exit_with(error)
    # Hydra's argparse takes overrides only before its flags (`a=1 --cfg job`, not `--cfg job a=1`).
    flags, overrides = split_flags(args)
    overrides += launcher_overrides(overrides)  # torchrun/srun ranks: one run directory for all
    sys.argv = [sys.argv[0], *overrides, *flags]
    hydra_main()


if __name__ == "__main__":
    main()
