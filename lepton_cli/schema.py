"""The config's schema: the type and valid range of every shared key, declared once, beside the key.

The YAML files in conf/ hold the values; the dataclasses here hold the types and ranges. They are
registered in Hydra's ConfigStore (`register()`, called by `config.conf_dir()`), and conf/config.yaml
merges them after the YAML (`- lepton_schema` and `- optional schema/method@method: ${method}` at
the end of its defaults list). So OmegaConf enforces the types while composing: `method.lr=abc`
fails there, with every command and test that composes the config. Schema fields default to `???`
(MISSING): merged after the YAML, they take its values and add only their types.

Groups whose keys differ per option (source/target, student/teacher, augment, logger, callbacks,
selection) stay free-form. A typed node refuses Hydra's `~key` (delete): set such a key to null instead; a method's own keys are checked when its option has a class in
`METHOD_SCHEMAS` (registered as `schema/method/<option>`).

Ranges live beside each field, as `Annotated` metadata (`lr: Annotated[float, POSITIVE] = MISSING`),
read by one generic function in `validate(cfg)`,
which also holds the checks that need several values together, the run directory, and (on the
machine that trains) the accelerator and checkpoint files.

To add a key: add it to the YAML with its value, then a field here, typed, with its rule when it
has one, e.g. `warmup: Annotated[float, FRACTION_BELOW_ONE] = MISSING`. A key only some options have (an
optimiser's `momentum`) goes into its class's `WHEN_PRESENT`, which is checked only where the key exists.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from omegaconf import MISSING

from lepton_cli.errors import LeptonError

MAX_BATCH_SIZE = 65536
MAX_NAME_BYTES = 255  # the longest file name Linux and macOS file systems take (one path component)
GPU_ACCELERATORS = ("gpu", "cuda")


@dataclass(frozen=True)
class Range:
    """A valid range for a number, named as the error message says it (e.g. `> 0`, `in [0, 1]`)."""

    text: str
    ok: Callable[[float], bool]
    words: tuple[str, ...] = ()  # non-numeric values also accepted, e.g. ("auto",)
    integer: bool = False        # for fields typed Any (a number or a word): whole numbers only
    at_most: float | None = None  # a sanity bound above the range, refused with `why`
    why: str = ""

    def error(self, key: str, value: Any) -> str | None:
        """The message for `key=value`, or None when the value is fine."""
        if value is None or (isinstance(value, str) and value in self.words):
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (self.integer and isinstance(value, float)):
            kind = "a whole number" if self.integer else "a number"
            choices = "".join(f" or {word}" for word in self.words)
            return f"{key} expects {kind}{choices}, got {value!r}; set {key}=NUMBER ({self.text})"
        if not self.ok(value):
            return f"{key} must be {self.text}, got {value}; set {key}=VALUE with a value {self.text}"
        if self.at_most is not None and value > self.at_most:
            return f"{key} must be at most {self.at_most:g}, got {value} ({self.why}); set {key}=VALUE with a smaller value"
        return None


POSITIVE = Range("> 0", lambda v: v > 0)
NON_NEGATIVE = Range(">= 0", lambda v: v >= 0)
AT_LEAST_ONE = Range(">= 1", lambda v: v >= 1)
FRACTION = Range("in [0, 1]", lambda v: 0 <= v <= 1)
FRACTION_BELOW_ONE = Range("in [0, 1)", lambda v: 0 <= v < 1)
BATCH_SIZE = dataclasses.replace(POSITIVE, at_most=MAX_BATCH_SIZE, why="no device holds such a batch")
SEED = Range("in [0, 2**32 - 1]", lambda v: 0 <= v <= 2**32 - 1)  # numpy's seed range; Lightning replaces others at random


@dataclass(frozen=True)
class Choice:
    """One of a few words (or values); `text` says what they mean where the words alone do not."""

    values: tuple[Any, ...]
    text: str = ""

    def error(self, key: str, value: Any) -> str | None:
        if any(type(value) is type(choice) and value == choice for choice in self.values):  # 1 is not true here
            return None
        names = [str(v).lower() if isinstance(v, bool) else str(v) for v in self.values]
        spelled = f"{', '.join(names[:-1])} or {names[-1]}"
        return f"{key} must be {self.text or spelled}, got {value!r}; set {key}={spelled}"


Rule = Range | Choice


# A field's rule is metadata on its type: `lr: Annotated[float, POSITIVE] = MISSING`. OmegaConf
# enforces the type; `validate()` reads the rule. MISSING (`???`) takes the value from the YAML.
@dataclass
class DataSettings:
    """`data:` in conf/config.yaml: the arguments of the DataModule."""

    _target_: str = MISSING
    root: str = MISSING
    cache_dir: str = MISSING
    download: bool = MISSING
    image_size: Annotated[Any, dataclasses.replace(POSITIVE, words=("auto",), integer=True)] = MISSING
    channels: Annotated[Any, Choice((1, 3, "auto"), "1 (grey) or 3 (RGB)")] = MISSING
    batch_size: Annotated[int, BATCH_SIZE] = MISSING
    eval_batch_size: Annotated[int, BATCH_SIZE] = MISSING
    steps_per_epoch: Annotated[int, POSITIVE] = MISSING
    num_workers: Annotated[int, NON_NEGATIVE] = MISSING
    fast_path: Annotated[str, Choice(("auto", "on", "off"))] = MISSING
    label_seed: Annotated[int, SEED] = MISSING
    source_val_fraction: Annotated[float, FRACTION_BELOW_ONE] = MISSING
    target_val_fraction: Annotated[float, FRACTION_BELOW_ONE] = MISSING


@dataclass
class TrainerSettings:
    """conf/trainer/_default.yaml: the Trainer arguments Lepton sets, and its own speed keys. Presets
    may add other Trainer arguments (strategy, num_nodes, ...)."""

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
class PartialSettings:
    """An optimiser or scheduler built later with the method's parameters (`_partial_: true`)."""

    _target_: str = MISSING
    _partial_: bool = MISSING

    # Keys of some optimisers and schedulers only: checked where the YAML has them.
    WHEN_PRESENT: ClassVar[Mapping[str, Rule]] = MappingProxyType({
        "momentum": FRACTION, "weight_decay": NON_NEGATIVE, "gamma": NON_NEGATIVE, "power": NON_NEGATIVE,
    })


@dataclass
class MethodSettings:
    """conf/method/_shared.yaml: what every method takes; each method adds keys of its own."""

    _target_: str = MISSING
    name: str = MISSING
    lr: Annotated[float, POSITIVE] = MISSING
    backbone_lr_mult: Annotated[float | None, NON_NEGATIVE] = MISSING  # null: 0.1 for a pretrained student, else 1.0
    bottleneck_dim: Annotated[int | None, POSITIVE] = MISSING  # null: no bottleneck
    lr_scaling: Annotated[str, Choice(("none", "linear"))] = MISSING
    # Checked like PartialSettings but left untyped for OmegaConf: a typed node refuses `~key`, and
    # switching optimiser takes `~method.optimizer.momentum`.
    optimizer: Annotated[Any, PartialSettings] = MISSING
    scheduler: Annotated[Any, PartialSettings] = MISSING


@dataclass
class AdversarialSettings(MethodSettings):
    trade_off: Annotated[float, NON_NEGATIVE] = MISSING
    hidden: Annotated[int, POSITIVE] = MISSING


@dataclass
class CDANSettings(AdversarialSettings):
    entropy_conditioning: bool = MISSING
    randomized: bool | None = MISSING
    randomized_dim: Annotated[int, POSITIVE] = MISSING


@dataclass
class MCCSettings(MethodSettings):
    trade_off: Annotated[float, NON_NEGATIVE] = MISSING
    temperature: Annotated[float, POSITIVE] = MISSING


@dataclass
class DistillSettings(MethodSettings):
    temperature: Annotated[float, POSITIVE] = MISSING
    alpha: Annotated[float, NON_NEGATIVE] = MISSING
    distill_source: bool = MISSING
    student_view: Annotated[str, Choice(("strong", "weak"))] = MISSING
    teacher_epochs: Annotated[int, AT_LEAST_ONE] = MISSING


@dataclass
class PseudoLabelSettings(MethodSettings):
    threshold: Annotated[float, FRACTION] = MISSING
    weight: Annotated[float, NON_NEGATIVE] = MISSING
    rampup: Annotated[float, FRACTION] = MISSING
    warmup: Annotated[float, FRACTION_BELOW_ONE] = MISSING
    distribution_alignment: bool = MISSING
    alignment_momentum: Annotated[float, FRACTION_BELOW_ONE] = MISSING
    teacher_labels: bool = MISSING
    teacher_epochs: Annotated[int, AT_LEAST_ONE] = MISSING


@dataclass
class VADASettings(MethodSettings):
    domain_weight: Annotated[float, NON_NEGATIVE] = MISSING
    source_vat_weight: Annotated[float, NON_NEGATIVE] = MISSING
    target_weight: Annotated[float, NON_NEGATIVE] = MISSING
    vat_eps: Annotated[float, POSITIVE] = MISSING
    vat_xi: Annotated[float, POSITIVE] = MISSING
    hidden: Annotated[int, POSITIVE] = MISSING


@dataclass
class FineTuneSettings(MethodSettings):
    labels_per_class: Annotated[int, AT_LEAST_ONE] = MISSING
    init: Annotated[str, Choice(("source", "scratch", "pretrained"))] = MISSING
    source_weight: Annotated[float, NON_NEGATIVE] = MISSING
    freeze_backbone: bool = MISSING
    teacher_epochs: Annotated[int, AT_LEAST_ONE] = MISSING


# conf/method/<option>.yaml → the class of its keys (an option without one gets MethodSettings).
METHOD_SCHEMAS: dict[str, type[MethodSettings]] = {
    "dann": AdversarialSettings, "cdan": CDANSettings, "mcc": MCCSettings, "distill": DistillSettings,
    "pseudo_label": PseudoLabelSettings, "vada": VADASettings, "finetune": FineTuneSettings,
}


@dataclass
class LeptonConfig:
    """conf/config.yaml: the root. The groups without a schema are `Any`."""

    seed: Annotated[int, SEED] = MISSING
    resume: str | None = MISSING
    report: bool = MISSING
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


@functools.cache
def register() -> None:
    """Put the schema into Hydra's ConfigStore, where conf/config.yaml's defaults list finds it."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="lepton_schema", node=LeptonConfig)
    for option, schema in METHOD_SCHEMAS.items():
        store.store(group="schema/method", name=option, node=schema)


# ---- the checks --------------------------------------------------------------------------------------
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
    _check_fields(LeptonConfig, {key: item for key, item in values.items() if key != "method"}, "")
    method = values.get("method") or {}
    _check_fields(METHOD_SCHEMAS.get(str(method.get("name")), MethodSettings), method, "method.")
    _check_trainer(values.get("trainer") or {})
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


def _check_fields(schema: type, values: Any, prefix: str) -> None:
    """Each field's rule (its `Annotated` metadata) against its value; nested schemas and
    `WHEN_PRESENT` keys too."""
    if not isinstance(values, dict):
        return
    hints = typing.get_type_hints(schema, include_extras=True)
    for spec in dataclasses.fields(schema):
        for rule in getattr(hints[spec.name], "__metadata__", ()):
            if isinstance(rule, type):  # a schema class: an untyped node checked like one
                _check_fields(rule, values.get(spec.name), f"{prefix}{spec.name}.")
                continue
            message = rule.error(prefix + spec.name, values.get(spec.name))
            if message:
                raise LeptonError(message)
        if dataclasses.is_dataclass(spec.default_factory):
            _check_fields(spec.default_factory, values.get(spec.name), f"{prefix}{spec.name}.")
    for key, rule in getattr(schema, "WHEN_PRESENT", {}).items():
        message = rule.error(prefix + key, values[key]) if key in values else None
        if message:
            raise LeptonError(message)


def _check_trainer(trainer: dict) -> None:
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
