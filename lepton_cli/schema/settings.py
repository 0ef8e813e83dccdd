"""The schema of the config's root (conf/config.yaml), its `data:` node and its trainer."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from omegaconf import MISSING

from lepton_cli.schema.methods import MethodSettings
from lepton_cli.schema.rules import AT_LEAST_ONE, BATCH_SIZE, FRACTION_BELOW_ONE, NON_NEGATIVE, POSITIVE, SEED, Choice, Rule

# Every image of a data set is held in memory at this size (uint8): 2048² × 3 is 12 MB an image.
IMAGE_SIZE = dataclasses.replace(POSITIVE, words=("auto",), integer=True, at_most=2048,
                                 why="every image is held in memory at this size")


# A field's rule is metadata on its type: `lr: Annotated[float, POSITIVE] = MISSING`. OmegaConf
# enforces the type; `validate()` reads the rule. MISSING (`???`) takes the value from the YAML.
@dataclass
class DataSettings:
    """`data:` in conf/config.yaml: the arguments of the DataModule."""

    _target_: str = MISSING
    root: str = MISSING
    cache_dir: str = MISSING
    download: bool = MISSING
    image_size: Annotated[Any, IMAGE_SIZE] = MISSING
    channels: Annotated[Any, Choice((1, 3, "auto"), "1 (grey) or 3 (RGB)")] = MISSING
    input_dim: Annotated[Any, dataclasses.replace(POSITIVE, words=("auto",), integer=True)] = MISSING
    batch_size: Annotated[int, BATCH_SIZE] = MISSING
    eval_batch_size: Annotated[int, BATCH_SIZE] = MISSING
    steps_per_epoch: Annotated[int, POSITIVE] = MISSING
    num_workers: Annotated[int, NON_NEGATIVE] = MISSING
    fast_path: Annotated[str, Choice(("auto", "on", "off"))] = MISSING
    streaming: Annotated[str, Choice(("auto", "on", "off"), "auto, on or off (read image files from disk while training)")] = MISSING
    max_memory_gb: Annotated[Any, dataclasses.replace(POSITIVE, words=("auto",))] = MISSING
    label_seed: Annotated[int, SEED] = MISSING
    source_val_fraction: Annotated[float, FRACTION_BELOW_ONE] = MISSING
    target_val_fraction: Annotated[float, FRACTION_BELOW_ONE] = MISSING


@dataclass
class TrainerSettings:
    """conf/trainer/_default.yaml: the Trainer arguments Lepton sets, and its own speed keys. Every
    other argument of `pytorch_lightning.Trainer` may be set too, as `trainer.X=` (see
    `trainer_parameters`), or by a preset (strategy, num_nodes, ...)."""

    _target_: str = MISSING
    max_epochs: int = MISSING  # >= 1, or -1 with max_steps: checked in validate()
    max_steps: int = MISSING
    accelerator: str = MISSING
    devices: Annotated[Any, dataclasses.replace(POSITIVE, words=("auto",), integer=True)] = MISSING
    precision: Any = MISSING
    deterministic: bool = MISSING
    fast_dev_run: Any = MISSING  # true/false or a number of batches: checked in validate()
    num_sanity_val_steps: int = MISSING
    log_every_n_steps: Annotated[int, POSITIVE] = MISSING
    check_val_every_n_epoch: Annotated[int, AT_LEAST_ONE] = MISSING
    enable_model_summary: bool = MISSING
    default_root_dir: str = MISSING
    compile: Any = MISSING  # true/false or a torch.compile mode name
    channels_last: Annotated[Any, Choice((True, False, "auto"))] = MISSING

    WHEN_PRESENT: ClassVar[Mapping[str, Rule]] = MappingProxyType({"num_nodes": POSITIVE})


@dataclass
class LeptonConfig:
    """conf/config.yaml: the root. The groups without a schema are `Any`."""

    seed: Annotated[int, SEED] = MISSING
    resume: str | None = MISSING
    report: bool = MISSING
    per_method: Any = MISSING  # {method name: {key: value}} from an experiment preset: checked in validate()
    run_name: str = MISSING
    data: DataSettings = field(default_factory=DataSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    method: MethodSettings = field(default_factory=MethodSettings)
    source: Any = MISSING
    target: Any = MISSING
    student: Any = MISSING
    teacher: Any = MISSING
    logger: Any = MISSING
    augment: Any = MISSING
    callbacks: Any = MISSING
    selection: Any = MISSING


# Keys of the trainer node that are not Trainer arguments: Hydra's and Lepton's own (lepton_cli/speed.py).
NOT_TRAINER_ARGUMENTS = frozenset({"_target_", "compile", "channels_last"})
TRAINER_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainerSettings))


@functools.cache
def trainer_parameters() -> frozenset[str]:
    """The names `pytorch_lightning.Trainer(...)` takes (imports Lightning: call it only for a key
    that is not in TRAINER_FIELDS)."""
    import inspect

    import pytorch_lightning as pl

    return frozenset(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
