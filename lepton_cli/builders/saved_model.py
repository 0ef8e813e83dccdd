"""A classifier rebuilt from a Lepton checkpoint, without running anything the file says.

A checkpoint carries the resolved config of the run that wrote it (`lepton_config`). That config
is data from a file a user may have been sent: it is never given to `hydra.utils.instantiate`.
Each object it names (the student backbone, the evaluation augmentation, a data set) is rebuilt
only when its `_target_` is one of Lepton's own classes that this installation's config tree uses
for that group (`allowed_targets`), and only from plain values: strings, numbers, booleans, None
and lists/dicts of those. Another `_target_`, a nested object, a Hydra special key (`_partial_`,
`_args_`, ...) or an interpolation (`${...}`: Lepton stores resolved configs) is refused with one
line. The weights themselves come from `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from lepton_cli.errors import LeptonError
from lepton_cli.io import safe_torch_load

PLAIN = (str, int, float, bool, type(None))
# Keyword arguments a factory passes on (`**kwargs`) that a stored config may set: plain numbers for timm.
EXTRA_ARGUMENTS = {"lepton_cli.models.backbones.timm_backbone": {"drop_rate", "drop_path_rate"}}
# Where the data lives on this machine: taken from this machine's config, never from a checkpoint
# (whose author chose where `lepton eval` would read, download and write caches).
LOCAL_DATA_KEYS = ("root", "cache_dir", "download")


@functools.cache
def allowed_targets(group: str) -> frozenset[str]:
    """Every `_target_` under `conf/<group>/` that names a class or function of Lepton's own."""
    import yaml

    from lepton_cli.config import conf_dir

    found: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str) and target.startswith("lepton_cli."):
                found.add(target)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for path in sorted((conf_dir() / group).rglob("*.yaml")):
        collect(yaml.safe_load(path.read_text()))
    return frozenset(found)


def check_plain(value: Any, where: str) -> None:
    """Plain data only: no objects to build, no Hydra keys, no interpolations."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("_"):
                raise LeptonError(f"refused the checkpoint's config: {where} has the key {key!r}, which would make Hydra "
                                  "build or call something; use a checkpoint written by lepton train")
            check_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]")
    elif not isinstance(value, PLAIN):
        raise LeptonError(f"refused the checkpoint's config: {where} holds a {type(value).__name__}, not plain data; "
                          "use a checkpoint written by lepton train")
    else:
        _check_no_interpolations(value, where)


def build_saved(node: Any, group: str, where: str, **fixed: Any) -> Any:
    """The object a stored config node describes, if its `_target_` is on the allowlist of `group`;
    `fixed` replaces stored arguments (e.g. `pretrained=False`: the weights come from the checkpoint)."""
    from hydra.utils import get_object

    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        raise LeptonError(f"the checkpoint's config has no {where} to rebuild; use a checkpoint written by lepton train")
    target = node["_target_"]
    if target not in allowed_targets(group):
        raise LeptonError(f"refused the checkpoint's config: {where}._target_={target!r} is not one of Lepton's "
                          f"{group} classes ({', '.join(sorted(allowed_targets(group)))}); never load checkpoints "
                          "from untrusted sources")
    arguments = {key: value for key, value in node.items() if key != "_target_"}
    check_plain(arguments, where)
    factory = get_object(target)
    # Only the parameters the class or function names itself: nothing reaches a `**kwargs` that is
    # handed on to a third party (timm's create_model would load a `checkpoint_path` it is given).
    parameters = declared_parameters(factory)
    unknown = sorted(set(arguments) - parameters - EXTRA_ARGUMENTS.get(target, set()))
    if unknown:
        raise LeptonError(f"refused the checkpoint's config: {where} has arguments {unknown} that {target} does not "
                          "declare; use a checkpoint written by lepton train")
    arguments.update({key: value for key, value in fixed.items() if key in parameters})
    return factory(**arguments)


def declared_parameters(factory: Any) -> set[str]:
    """The named parameters of a function, or of a class's `__init__` and, while it passes
    `**kwargs` on, its bases' (a data set's `name`, `rename_classes`, `cache` come from `Domain`)."""
    import inspect

    functions = [factory] if not inspect.isclass(factory) else [c.__init__ for c in factory.__mro__ if "__init__" in vars(c)]
    names: set[str] = set()
    for function in functions:
        parameters = list(inspect.signature(function).parameters.values())
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def load_checkpoint(path: str | Path) -> dict:
    """A Lepton checkpoint as a dict of tensors and plain values; refuses anything else."""
    checkpoint = safe_torch_load(path, "checkpoint")
    if not isinstance(checkpoint, dict) or "lepton_config" not in checkpoint or "state_dict" not in checkpoint:
        raise LeptonError(f"{Path(path).expanduser()} is not a Lepton checkpoint (no lepton_config in it); "
                          "evaluate a checkpoint written by lepton train")
    if not isinstance(checkpoint["lepton_config"], dict):
        raise LeptonError(f"{Path(path).expanduser()} has a lepton_config that is not a mapping; "
                          "evaluate a checkpoint written by lepton train")
    _check_no_interpolations(checkpoint["lepton_config"], "lepton_config")
    _check_shape(checkpoint["lepton_config"], Path(path).expanduser())
    return checkpoint


def checkpoint_modality(config: dict) -> str:
    """The input kind of a stored config: `image`, or what its evaluation augmentation is made for
    (`features`, `tokens`, `audio`), read only from one of Lepton's own augmentation classes."""
    from lepton_cli.data.modality import component_modality

    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    if not (isinstance(data.get("input_dim"), int) and not isinstance(data.get("image_size"), int)):
        return "image"
    augment = config.get("augment")
    weak = augment.get("weak") if isinstance(augment, dict) else None
    target = weak.get("_target_") if isinstance(weak, dict) else None
    if target not in allowed_targets("augment"):
        raise LeptonError(f"refused the checkpoint's config: augment.weak names {str(target)[:80]!r}, not one of "
                          "Lepton's augmentations; evaluate a checkpoint written by lepton train")
    return component_modality(target)


def _check_shape(config: dict, path: Path) -> None:
    """The parts of a stored config that eval and report read, with the types they read them as."""
    expected = {"data": dict, "student": dict, "source": dict, "target": dict, "method": dict}
    problems = [key for key, kind in expected.items() if not isinstance(config.get(key), kind)]
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    modality = checkpoint_modality(config)
    if modality == "tokens":
        # A token run builds its vocabulary from its source and target training text; it is not stored yet.
        raise LeptonError(f"{path} is from a token run (augment=tokens): its vocabulary is built per run and not "
                          "stored, so lepton eval, lepton report, api.load_model and teacher.run cannot read it yet; "
                          "use the metrics.json of that run (bag-of-words runs, augment=text, can be evaluated)")
    wanted = ("image_size", "channels") if modality == "image" else ("input_dim",)
    problems += [f"data.{key}" for key in wanted if not isinstance(data.get(key), int)]
    problems += [f"{domain}.name" for domain in ("source", "target")
                 if not isinstance((config.get(domain) or {}).get("name") if isinstance(config.get(domain), dict) else None, str)]
    if problems:
        raise LeptonError(f"{path} has a lepton_config without {', '.join(problems[:3])} (or of another type); "
                          "it was not written by this Lepton: evaluate a checkpoint written by lepton train")


def _check_no_interpolations(node: Any, where: str) -> None:
    """Lepton stores resolved configs; an interpolation in one would be resolved when the config is
    read (`oc.env` reads the environment, `oc.decode` builds new nodes), so it is refused."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_no_interpolations(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_no_interpolations(value, f"{where}[{index}]")
    elif isinstance(node, str) and "${" in node:
        raise LeptonError(f"refused the checkpoint's config: {where} holds an interpolation ({node[:60]!r}); "
                          "lepton train stores resolved values, so this file was not written by it")


def local_config(checkpoint: dict) -> dict:
    """The checkpoint's config with this machine's data places (`LOCAL_DATA_KEYS` of the default
    config: `$LEPTON_DATA`, `$LEPTON_CACHE`, no download) instead of the ones stored in it."""
    import copy

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lepton_cli.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        defaults = compose("config")
    here = {key: OmegaConf.select(defaults, f"data.{key}") for key in LOCAL_DATA_KEYS}
    config = copy.deepcopy(checkpoint["lepton_config"])
    if not isinstance(config.get("data"), dict):
        raise LeptonError("the checkpoint's config has no data settings; use a checkpoint written by lepton train")
    config["data"].update(here)
    return config


def checkpoint_classes(checkpoint: dict) -> list[str]:
    hyper_parameters = checkpoint.get("hyper_parameters") or {}
    classes = checkpoint.get("lepton_classes") or hyper_parameters.get("class_names")
    if not classes or not isinstance(classes, list):
        raise LeptonError("the checkpoint does not record its class names; re-create it with lepton train")
    return [str(c) for c in classes]


def build_classifier(checkpoint: dict):
    """(Classifier with the checkpoint's weights, in eval mode; the uint8 → input normalisation)."""
    from lepton_cli.models.heads import Classifier

    config = checkpoint["lepton_config"]
    classes = checkpoint_classes(checkpoint)
    # The weights come from the checkpoint: never download, never read another file.
    backbone = build_saved(config.get("student"), "backbone", "student", pretrained=False, checkpoint=None)
    bottleneck = (checkpoint.get("hyper_parameters") or {}).get("bottleneck_dim", (config.get("method") or {}).get("bottleneck_dim"))
    if bottleneck is not None and not isinstance(bottleneck, int):
        raise LeptonError(f"the checkpoint's bottleneck_dim is {bottleneck!r}, not a number; use a checkpoint written by lepton train")
    classifier = Classifier(backbone, len(classes), bottleneck)
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    try:
        missing, _unexpected = classifier.load_state_dict(weights, strict=False)
    except RuntimeError as error:
        raise LeptonError(f"the checkpoint's weights do not fit its config ({str(error).splitlines()[0][:160]}); "
                          "it may come from another Lepton version") from None
    if missing:
        raise LeptonError(f"the checkpoint's weights do not fit its config (missing {', '.join(missing[:3])}); "
                          "it may come from another Lepton version")
    augment = config.get("augment")
    if isinstance(augment, dict) and "weak" in augment:
        from lepton_cli.models.backbones import backbone_normalization

        weak = build_saved(augment["weak"], "augment", "augment.weak")
        if hasattr(weak, "use_backbone_normalization"):  # images, `mean: auto`: as in training
            weak.use_backbone_normalization(backbone_normalization(backbone))
        normalize = weak.normalize
    else:
        from lepton_cli.data.augment import as_unit_range

        def normalize(images):
            return (as_unit_range(images) - 0.5) / 0.5  # uint8, or [0, 1] floats (the attacks' space)
    return classifier.eval(), normalize


def evaluation_split(config: dict, domain_config: dict, classes: list[str], where: str):
    """The test split of the data set `domain_config` (stored or freshly composed) as (inputs: uint8
    images or the modality's float arrays, labels indexing the classes it shares with the checkpoint,
    the class alignment)."""
    import torch

    from lepton_cli.data.alignment import ClassAlignment
    from lepton_cli.data.arrays import InputArrays
    from lepton_cli.data.datamodule import to_tensor

    data = config["data"]
    domain = build_saved(domain_config, "dataset", where)
    arrays = domain.load("test", data["root"], data.get("download", False), data.get("cache_dir"))
    modality = checkpoint_modality(config)
    found = arrays.modality if isinstance(arrays, InputArrays) else "image"
    if found != modality:
        raise LeptonError(f"{domain.name} is {found} data but the checkpoint was trained on {modality} data; "
                          "evaluate it on a data set of its own kind (lepton list target)")
    alignment = ClassAlignment.between(classes, arrays.classes, "checkpoint", domain.name)
    arrays = alignment.apply(arrays)
    if len(arrays) == 0:
        raise LeptonError(f"the test split of {domain.name} has no images of the checkpoint's classes")
    if modality == "image":
        images, labels = to_tensor(arrays, data["image_size"], data["channels"])
        return images, labels, alignment
    if arrays.inputs.shape[1] != data["input_dim"]:
        raise LeptonError(f"{domain.name} has {modality} inputs of width {arrays.inputs.shape[1]} but the checkpoint "
                          f"expects data.input_dim={data['input_dim']}; evaluate it on data of the same feature space "
                          "(or recording length)")
    return torch.from_numpy(arrays.inputs.copy()), torch.from_numpy(arrays.labels), alignment
