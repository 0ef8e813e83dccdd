"""`validate(cfg)`: the composed config checked before any data is read — each field against its
rule, the checks that need several values together, the run directory and (on the machine that
trains) the accelerator and checkpoint files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from lepton_cli.errors import LeptonError
from lepton_cli.schema.methods import METHOD_SCHEMAS, MethodSettings
from lepton_cli.schema.presets import command_line_method_keys, with_per_method
from lepton_cli.schema.rules import check_fields
from lepton_cli.schema.settings import NOT_TRAINER_ARGUMENTS, TRAINER_FIELDS, LeptonConfig, trainer_parameters

MAX_NAME_BYTES = 255  # the longest file name Linux and macOS file systems take (one path component)
GPU_ACCELERATORS = ("gpu", "cuda")


# What a callback may watch to choose or stop: never target test labels, unless the run's own
# selection is the oracle (which every output labels "uses target labels").
LABELLED_PREFIXES = ("target/", "oracle/", "selection/target/")


def _check_no_label_steering(values: dict) -> None:
    uses_labels = str((values.get("selection") or {}).get("name", "")).startswith("oracle")
    for name, callback in (values.get("callbacks") or {}).items():
        monitor = callback.get("monitor") if isinstance(callback, dict) else None
        if isinstance(monitor, str) and monitor.startswith(LABELLED_PREFIXES) and not uses_labels:
            raise LeptonError(f"callbacks.{name}.monitor={monitor} would choose by target test labels; monitor "
                              "selection/score (the selection= validator), or use selection=oracle, which every "
                              "output labels as using target labels")


def validate(cfg: Any, *, on_this_machine: bool = True) -> None:
    """Check the composed config before any data is read; one `LeptonError` for the first problem.

    `cfg` is the job's config, or the whole one with its `hydra` node (then the run directory is
    checked too). `on_this_machine=False` leaves out what depends on the machine (a GPU, checkpoint
    files): a sweep checks its jobs where it starts them, not where they run.
    """
    from omegaconf import DictConfig, OmegaConf

    with_hydra = isinstance(cfg, DictConfig) and "hydra" in cfg
    values = _resolved(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if with_hydra else cfg)
    if with_hydra:
        _check_run_dir(_run_dir(cfg))
    missing = _first_missing(values)
    if missing:
        raise LeptonError(f"{missing} has no value (???); set {missing}=VALUE")
    # The method's keys are checked by its option's class, not the root's MethodSettings.
    check_fields(LeptonConfig, {key: item for key, item in values.items() if key != "method"}, "")
    # With an experiment preset's settings for this method (per_method:), as the run will build it.
    method = with_per_method(values, command_line_method_keys(cfg)).get("method") or {}
    check_fields(METHOD_SCHEMAS.get(str(method.get("name")), MethodSettings), method, "method.")
    _check_trainer(values.get("trainer") or {})
    _check_no_label_steering(values)
    if on_this_machine:
        _check_accelerator(values.get("trainer") or {})
        for role in ("student", "teacher"):
            checkpoint = (values.get(role) or {}).get("checkpoint")
            if checkpoint:
                from lepton_cli.checkpoints import check_checkpoint_file

                check_checkpoint_file(checkpoint, f"{role}.checkpoint")


def _resolved(cfg: Any) -> dict:
    """The config as plain values, interpolations resolved; a value that cannot be resolved (e.g.
    `${oc.env:NAME}` of an unset variable) is named in one line."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import InterpolationResolutionError, ValidationError

    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except (InterpolationResolutionError, ValidationError) as error:
        raw = OmegaConf.to_container(cfg, resolve=False)
        key = _failing_leaf(cfg, raw) or error.full_key or "?"
        try:
            OmegaConf.select(cfg, key)
        except (InterpolationResolutionError, ValidationError) as inner:
            error = inner
        reason = str(error).splitlines()[0].split("while resolving interpolation: ", 1)[-1].strip('"')
        raise LeptonError(f"{key}={_lookup(raw, key)} cannot be resolved ({reason}); set the environment variable it "
                          f"names, give a default (${{oc.env:NAME,DEFAULT}}) or set {key}=VALUE") from None


def _failing_leaf(cfg: Any, raw: Any, prefix: str = "") -> str | None:
    """The first key whose own value fails to resolve; keys that fail only through Hydra's run
    directory (`${hydra:...}`) come last, so the message names the value the user wrote."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    failing = []
    for key, item in _leaves(raw, prefix):
        try:
            OmegaConf.select(cfg, key)
        except OmegaConfBaseException:
            failing.append(key)
    failing.sort(key=lambda k: "${hydra:" in str(_lookup(raw, k)))
    return failing[0] if failing else None


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, item in node.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _run_dir(cfg: Any) -> str:
    from omegaconf.errors import OmegaConfBaseException

    try:
        return str(cfg.hydra.run.dir)
    except OmegaConfBaseException as error:
        raise LeptonError(f"hydra.run.dir cannot be resolved ({str(error).splitlines()[0]}); "
                          "set hydra.run.dir=DIR") from None


def _lookup(values: Any, key: str) -> Any:
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _first_missing(node: Any, prefix: str = "") -> str | None:
    if isinstance(node, dict):
        for key, item in node.items():
            found = _first_missing(item, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
            if found:
                return found
    elif node == MISSING:
        return prefix
    return None


def _check_trainer(trainer: dict) -> None:
    extra = set(trainer) - TRAINER_FIELDS  # a preset's own keys (strategy, ...): Trainer(...) would refuse a typo late
    unknown = sorted(extra - NOT_TRAINER_ARGUMENTS - trainer_parameters()) if extra else []
    if unknown:
        from lepton_cli.config import close_names

        close = close_names(unknown[0], trainer_parameters())
        raise LeptonError(f"trainer.{unknown[0]} is not an argument of pytorch_lightning.Trainer"
                          + (f"; close names: {', '.join(close)}" if close else "") + "; fix the trainer preset or override")
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if max_epochs == -1 and not (isinstance(max_steps, int) and max_steps > 0):
        raise LeptonError("trainer.max_epochs=-1 trains until trainer.max_steps, which is not set: it would never stop; "
                          "set trainer.max_steps=N or trainer.max_epochs=N")
    if isinstance(max_epochs, int) and (max_epochs == 0 or max_epochs < -1):
        raise LeptonError(f"trainer.max_epochs must be at least 1 (or -1: until max_steps), got {max_epochs}; "
                          "set trainer.max_epochs=N")
    if isinstance(max_steps, int) and (max_steps == 0 or max_steps < -1):
        raise LeptonError(f"trainer.max_steps must be at least 1 (or -1: no limit), got {max_steps}; set trainer.max_steps=N")
    fast_dev_run = trainer.get("fast_dev_run")
    if not isinstance(fast_dev_run, bool) and not (isinstance(fast_dev_run, int) and fast_dev_run >= 0):
        raise LeptonError(f"trainer.fast_dev_run expects true or false (or a number of batches), got {fast_dev_run!r}; "
                          "e.g. trainer.fast_dev_run=true")


def _check_accelerator(trainer: dict) -> None:
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    if not torch.cuda.is_available():
        raise LeptonError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU "
                          "(torch.cuda.is_available() is False); use trainer=cpu")


def _check_run_dir(run_dir: str) -> None:
    """Not the file-system root (Hydra would write .hydra/ and the run there), and no path component
    longer than a file system takes (Hydra would fail with a traceback after starting)."""
    path = Path(os.path.abspath(os.path.expanduser(str(run_dir))))
    if path == Path(path.anchor):
        raise LeptonError(f"hydra.run.dir={run_dir} is the file-system root; give a directory of its own for the run, "
                          "e.g. hydra.run.dir=runs/NAME")
    for part in path.parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise LeptonError(f"the run directory name {part[:40]}... is {len(part.encode())} bytes, more than the "
                              f"{MAX_NAME_BYTES} a file system takes; shorten run_name or hydra.run.dir")
