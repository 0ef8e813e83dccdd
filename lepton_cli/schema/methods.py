"""The schema of `method:`: what every method takes (`MethodSettings`), each method's own keys, and
`METHOD_SCHEMAS`, which option is checked by which class."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from omegaconf import MISSING

from lepton_cli.schema.rules import AT_LEAST_ONE, FRACTION, FRACTION_BELOW_ONE, NON_NEGATIVE, POSITIVE, Choice, Rule


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
class DANNSettings(AdversarialSettings):
    hidden_layers: Annotated[int, NON_NEGATIVE] = MISSING  # 0: a logistic-regression discriminator


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
    feature_loss: Annotated[str, Choice(("none", "hints", "attention", "rkd"))] = MISSING
    feature_weight: Annotated[float, NON_NEGATIVE] = MISSING
    teacher_layer: str | None = MISSING  # a module name in the teacher's backbone; null: its pooled features
    student_layer: str | None = MISSING
    adapt: Annotated[str, Choice(("none", "mcc"))] = MISSING
    adapt_weight: Annotated[float, NON_NEGATIVE] = MISSING
    adapt_temperature: Annotated[float, POSITIVE] = MISSING


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


@dataclass
class MLDGSettings(MethodSettings):
    inner_lr: Annotated[float, POSITIVE] = MISSING
    beta: Annotated[float, NON_NEGATIVE] = MISSING
    first_order: bool = MISSING
    meta_test_domains: Annotated[int, AT_LEAST_ONE] = MISSING


@dataclass
class CORALSettings(MethodSettings):
    trade_off: Annotated[float, NON_NEGATIVE] = MISSING
    target_alignment: bool = MISSING


@dataclass
class MixStyleSettings(MethodSettings):
    layers: list[str] = MISSING
    p: Annotated[float, FRACTION] = MISSING
    alpha: Annotated[float, POSITIVE] = MISSING
    mix: Annotated[str, Choice(("random", "crossdomain"))] = MISSING


# conf/method/<option>.yaml → the class of its keys (an option without one gets MethodSettings).
METHOD_SCHEMAS: dict[str, type[MethodSettings]] = {
    "dann": DANNSettings, "cdan": CDANSettings, "mcc": MCCSettings, "distill": DistillSettings,
    "pseudo_label": PseudoLabelSettings, "vada": VADASettings, "finetune": FineTuneSettings,
    "mldg": MLDGSettings, "coral": CORALSettings, "mixstyle": MixStyleSettings,
}
