"""`lepton train`: the Hydra application. Compose the config → build data, method and Trainer →
fit → test → write the run directory.

`lepton train ARGS` runs `python -m lepton_cli.train ARGS`, so that Lightning's DDP launcher can
restart this same module with the same arguments on each rank. Nothing imports this module: the
pieces it puts together live in `lepton_cli.builders`, `lepton_cli.run_dir` and below.
"""

from __future__ import annotations

import signal
import sys

if __name__ == "__main__":  # Ctrl-C while the imports below run: nothing has started, exit quietly
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

import contextlib
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lepton_cli.config import conf_dir, rewrite_overrides, searchpath_args
from lepton_cli.distributed import is_child_rank, launcher_overrides
from lepton_cli.errors import error_boundary
from lepton_cli.overrides import check_flags, check_overrides, split_flags, trainer_overrides
from lepton_cli.run_dir import prepare_args, run_dir_of

log = logging.getLogger("lepton")


def run(cfg: DictConfig) -> dict:
    """Train and evaluate one experiment; returns the metrics written to `metrics.json`."""
    import pytorch_lightning as pl
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    from lepton_cli.builders.data import build_datamodule, resolve_data_shape
    from lepton_cli.builders.method import build_method
    from lepton_cli.builders.trainer import build_trainer
    from lepton_cli.callbacks import SelectionCallback
    from lepton_cli.checkpoints import check_resume_fits, check_student_checkpoint_fits, last_checkpoint
    from lepton_cli.distributed import log_scale
    from lepton_cli.io import write_atomically, write_json_atomically
    from lepton_cli.loggers import check_installed, quiet_library_noise
    from lepton_cli.reporting.tables import print_metrics
    from lepton_cli.run_dir import check_run_dir, record_overrides
    from lepton_cli.schema import validate
    from lepton_cli.speed import apply_speed_options

    started = time.time()
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    resume = cfg.get("resume")
    check_run_dir(run_dir, resuming=bool(resume))
    validate(cfg)
    check_installed(cfg.logger)
    quiet_library_noise()
    log.info("run directory: %s", run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    resolve_data_shape(cfg, datamodule)
    check_student_checkpoint_fits(cfg)
    shape = (f"{datamodule.image_size} px, {datamodule.channels} channel(s)" if getattr(datamodule, "modality", "image") == "image"
             else f"{datamodule.modality}, input width {datamodule.input_dim}")
    log.info("%s → %s: %s; %s", cfg.source.name, cfg.target.name, datamodule.alignment.describe(), shape)
    method = build_method(cfg, datamodule)
    method.run_config = OmegaConf.to_container(cfg, resolve=True)
    selection = SelectionCallback(instantiate(cfg.selection))
    trainer: pl.Trainer = build_trainer(cfg, run_dir, selection)
    apply_speed_options(method, cfg.trainer, trainer.strategy.root_device.type == "cuda", datamodule.channels)
    log_scale(trainer, cfg, datamodule)
    # resume=DIR: continue from DIR's last checkpoint (weights, optimiser, loop position, random state)
    ckpt_path = str(last_checkpoint(Path(resume).expanduser().resolve())) if resume else None
    if ckpt_path:
        check_resume_fits(method, ckpt_path)
    if trainer.is_global_zero:
        write_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        if resume:  # every check passed: from now on the run continues with these settings
            record_overrides(run_dir, list(hydra_config.overrides.task))
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
            from lepton_cli.reporting.markdown import write_run_report

            write_run_report(run_dir)
        print_metrics(metrics, datamodule.classes, title=f"{cfg.source.name} → {cfg.target.name}, {cfg.method.name}")
        log.info("run directory: %s", run_dir)
    return metrics


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    with error_boundary():  # SystemExit passes through Hydra's own handler; a LeptonError would not
        metrics = run(cfg)
    # What Hydra's Optuna sweeper maximises: the validator's score (higher is better), never target accuracy.
    return metrics.get("selection/rank_score")


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_dir = None
    try:
        with error_boundary():
            # Hydra's argparse takes overrides only before its flags (`a=1 --cfg job`, not `--cfg job a=1`).
            # --config-dir DIR becomes hydra.searchpath=[file://DIR], which every check below composes with.
            flags, overrides = split_flags(rewrite_overrides(searchpath_args(sys.argv[1:])))
            check_flags(flags)
            overrides = trainer_overrides(overrides)
            overrides += launcher_overrides(overrides)  # torchrun/srun ranks: one run directory for all
            args = [*overrides, *flags]
            resuming = any(arg.partition("=")[0].lstrip("+~") == "resume" for arg in overrides)
            # One composition checks the overrides and resolves hydra.run.dir, which is then checked and
            # pinned; resume=DIR first becomes the run's own overrides (read as data), then is checked.
            composed = None if resuming else check_overrides(args)
            args = prepare_args(args, composed)
            if resuming:
                check_overrides(args)
            flags, overrides = split_flags(args)
        sys.argv = [sys.argv[0], *overrides, *flags]
        run_dir = run_dir_of([*overrides, *flags])
        with error_boundary(), _lock_run_dir(run_dir):
            hydra_main()
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C: one line, not a traceback
        resumable = run_dir is not None and (run_dir / "checkpoints" / "last.ckpt").is_file()
        print("\nlepton: interrupted" + (f"; continue with: lepton train resume={run_dir}" if resumable else ""),
              file=sys.stderr)
        sys.exit(130)


def _lock_run_dir(run_dir: Path | None):
    """One process per run directory: rank 0 holds its lock while it trains (the ranks Lightning or
    torchrun start share it); printing the config (`--cfg`) or a sweep (`-m`) locks nothing."""
    from lepton_cli.io import directory_lock

    if run_dir is None or is_child_rank():
        return contextlib.nullcontext()
    return directory_lock(run_dir, "run directory")


if __name__ == "__main__":
    main()
