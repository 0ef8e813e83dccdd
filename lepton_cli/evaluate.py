"""`lepton eval checkpoint=PATH [target=NAME] [data.root=...] [hydra.run.dir=DIR]`.

Rebuilds the classifier from the resolved config a Lepton checkpoint carries
(`checkpoint["lepton_config"]`), evaluates it on the target test split of the training target or of
another data set (classes matched by name against the checkpoint's classes, as in training),
prints the metrics table and writes `eval.json` beside the checkpoint (or into DIR).

Checkpoints are loaded with `torch.load(weights_only=True)`: tensors and plain containers only,
so a file crafted to run code when unpickled is refused, never executed. torch is imported inside
the functions so that `lepton eval --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lepton_cli.errors import LeptonError

EVAL_HELP = """\
usage: lepton eval checkpoint=PATH [target=NAME] [KEY=VALUE...] [hydra.run.dir=DIR]

Evaluate a saved model on the target test split: the run's own target, or any data set config
(`lepton list source` names them; classes are matched by name with the checkpoint's classes, as in
training). Prints accuracy, macro recall, macro F1 and per-class accuracy, and writes eval.json
beside the checkpoint (or into hydra.run.dir=DIR).

  checkpoint=PATH        a .ckpt written by `lepton train` (e.g. runs/<run>/checkpoints/last.ckpt)
  target=NAME            another data set config, e.g. target=mnist data.root=~/data
  KEY=VALUE              changes to the run's stored config, e.g. data.root=~/data data.eval_batch_size=256

Checkpoints are read with torch.load(weights_only=True): a file that would run code is refused.
"""


def parse_args(args: list[str]) -> tuple[str, str | None, str | None, list[str]]:
    """→ (checkpoint, target, output dir, the other KEY=VALUE overrides)."""
    checkpoint = target = output_dir = None
    overrides = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise LeptonError(f"unexpected argument {arg!r}; write checkpoint=PATH, target=NAME or KEY=VALUE "
                              "(see lepton eval --help)")
        key = key.lstrip("+")
        if key in ("checkpoint", "ckpt", "ckpt_path"):
            checkpoint = value
        elif key in ("target", "dataset@target"):
            target = value
        elif key == "hydra.run.dir":
            output_dir = value
        else:
            overrides.append(f"{key}={value}")
    if not checkpoint:
        raise LeptonError("no checkpoint given; run lepton eval checkpoint=runs/<run>/checkpoints/last.ckpt")
    return checkpoint, target, output_dir, overrides


def load_checkpoint(path: str | Path) -> dict:
    """A Lepton checkpoint as a dict of tensors and plain values; refuses anything else."""
    from lepton_cli.safety import safe_load

    checkpoint = safe_load(path, "checkpoint")
    if not isinstance(checkpoint, dict) or "lepton_config" not in checkpoint or "state_dict" not in checkpoint:
        raise LeptonError(f"{Path(path).expanduser()} is not a Lepton checkpoint (no lepton_config in it); "
                          "evaluate a checkpoint written by lepton train")
    return checkpoint


def checkpoint_classes(checkpoint: dict) -> list[str]:
    hyper_parameters = checkpoint.get("hyper_parameters") or {}
    classes = checkpoint.get("lepton_classes") or hyper_parameters.get("class_names")
    if not classes:
        raise LeptonError("the checkpoint does not record its class names; re-create it with lepton train")
    return [str(c) for c in classes]


def build_classifier(checkpoint: dict):
    """(Classifier with the checkpoint's weights, in eval mode; the uint8 → input normalisation)."""
    from hydra.utils import instantiate

    from lepton_cli.models.heads import Classifier

    config = checkpoint["lepton_config"]
    student = dict(config["student"])
    if "pretrained" in student:
        student["pretrained"] = False  # the weights come from the checkpoint: never download
    classes = checkpoint_classes(checkpoint)
    bottleneck = (checkpoint.get("hyper_parameters") or {}).get("bottleneck_dim", config["method"].get("bottleneck_dim"))
    classifier = Classifier(instantiate(student), len(classes), bottleneck)
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    missing, _unexpected = classifier.load_state_dict(weights, strict=False)
    if missing:
        raise LeptonError(f"the checkpoint's weights do not fit its config (missing {', '.join(missing[:3])}); "
                          "it may come from another Lepton version")
    augment = instantiate(config["augment"]["weak"]) if "augment" in config else None
    normalize = augment.normalize if augment is not None else (lambda images: (images.float() / 255 - 0.5) / 0.5)
    return classifier.eval(), normalize


def target_domain_config(name: str) -> dict:
    """The resolved config of data set NAME, composed with Hydra as `lepton train target=NAME` would."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from lepton_cli.config import conf_dir, group_options

    options = group_options("target")
    if name not in options:
        raise LeptonError(f"unknown target {name!r}; choose one of: {', '.join(options)} (`lepton list source`)")
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("config", overrides=[f"dataset@target={name}"])
        return OmegaConf.to_container(cfg.target, resolve=True)
    except HydraException as error:
        raise LeptonError(f"could not compose target={name}: {str(error).splitlines()[0]}") from None


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """KEY=VALUE changes to the stored config; unknown keys are an error (as in lepton train)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cfg = OmegaConf.create(config)
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        try:
            cfg.merge_with_dotlist([override])
        except OmegaConfBaseException as error:
            raise LeptonError(f"cannot apply {override!r} to the checkpoint's config ({str(error).splitlines()[0]}); "
                              "check the key's spelling in the run's config.yaml") from None
    return OmegaConf.to_container(cfg, resolve=True)


def target_test_split(config: dict, target: dict, classes: list[str]):
    """(uint8 images, labels in the checkpoint's class order restricted to the shared classes, alignment)."""
    from hydra.utils import instantiate

    from lepton_cli.data.alignment import ClassAlignment
    from lepton_cli.data.datamodule import to_tensor

    data = config["data"]
    domain = instantiate(target)
    arrays = domain.load("test", data["root"], data.get("download", False), data.get("cache_dir"))
    alignment = ClassAlignment.between(classes, arrays.classes, "checkpoint", domain.name)
    arrays = alignment.apply(arrays)
    if len(arrays) == 0:
        raise LeptonError(f"the test split of {domain.name} has no images of the checkpoint's classes")
    images, labels = to_tensor(arrays, data["image_size"], data["channels"])
    return images, labels, alignment


def evaluate(checkpoint_path: str, target: str | None = None, overrides: list[str] | None = None,
             output_dir: str | None = None, quiet: bool = False) -> dict:
    """Evaluate a checkpoint on a target test split; returns what eval.json holds."""
    import torch

    from lepton_cli.methods.base import classification_metrics
    from lepton_cli.train import write_json_atomically

    checkpoint = load_checkpoint(checkpoint_path)
    config = apply_overrides(checkpoint["lepton_config"], overrides or [])
    classes = checkpoint_classes(checkpoint)
    target_config = target_domain_config(target) if target else config["target"]
    classifier, normalize = build_classifier(checkpoint)
    images, labels, alignment = target_test_split(config, target_config, classes)
    # Score only the classes both share, as training does (their indices in the checkpoint's order).
    shared = torch.tensor([classes.index(c) for c in alignment.classes])
    metrics = classification_metrics(len(alignment.classes))
    batch_size = int(config["data"].get("eval_batch_size", 512))
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits, _ = classifier(normalize(images[start:start + batch_size]))
            metrics.update(logits[:, shared], labels[start:start + batch_size])
    results = {f"target/{k}": (v.tolist() if v.ndim else float(v)) for k, v in metrics.compute().items()}
    checkpoint_path = str(Path(checkpoint_path).expanduser().resolve())
    report = {**results, "classes": alignment.classes, "alignment": alignment.as_dict(), "checkpoint": checkpoint_path,
              "epoch": checkpoint.get("epoch"), "step": checkpoint.get("global_step"),
              "method": config["method"].get("name"), "source": config["source"]["name"],
              "target": target_config["name"], "trained_target": checkpoint["lepton_config"]["target"]["name"],
              "images": len(labels)}
    directory = Path(output_dir).expanduser() if output_dir else Path(checkpoint_path).parent
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomically(directory / "eval.json", report)
    if not quiet:
        from lepton_cli.reporting.tables import print_metrics

        print_metrics(results, alignment.classes,
                      title=f"{Path(checkpoint_path).name} ({report['source']} → {report['trained_target']}, "
                            f"{report['method']}) on {report['target']}")
        print(f"wrote {directory / 'eval.json'}")
    return report


def main(args: list[str]) -> int:
    import os

    if args[:1] in (["-h"], ["--help"]):
        print(EVAL_HELP, end="")
        return 0
    try:
        checkpoint, target, output_dir, overrides = parse_args(args)
        evaluate(checkpoint, target, overrides, output_dir)
    except LeptonError as error:
        if os.environ.get("LEPTON_DEBUG") == "1":
            raise
        print(f"lepton: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0
