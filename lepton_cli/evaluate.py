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

from pathlib import Path

from lepton_cli.errors import LeptonError, one_line_errors

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


def evaluate(checkpoint_path: str, target: str | None = None, overrides: list[str] | None = None,
             output_dir: str | None = None, quiet: bool = False) -> dict:
    """Evaluate a checkpoint on a target test split; returns what eval.json holds."""
    import torch

    from lepton_cli.builders.saved_model import (
        build_classifier,
        checkpoint_classes,
        evaluation_split,
        load_checkpoint,
        local_config,
    )
    from lepton_cli.io import write_json_atomically
    from lepton_cli.methods.base import classification_metrics

    checkpoint = load_checkpoint(checkpoint_path)
    config = apply_overrides(local_config(checkpoint), overrides or [])
    classes = checkpoint_classes(checkpoint)
    target_config = target_domain_config(target) if target else config["target"]
    classifier, normalize = build_classifier(checkpoint)
    images, labels, alignment = evaluation_split(config, target_config, classes, "target")
    # Score only the classes both share, as training does (their indices in the checkpoint's order).
    shared = torch.tensor([classes.index(c) for c in alignment.classes])
    metrics = classification_metrics(len(alignment.classes))
    batch_size = config["data"].get("eval_batch_size", 512)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise LeptonError(f"data.eval_batch_size must be a whole number ≥ 1, got {batch_size!r}; e.g. data.eval_batch_size=256")
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
    write_json_atomically(directory / "eval.json", report)
    if not quiet:
        from lepton_cli.reporting.tables import print_metrics

        print_metrics(results, alignment.classes,
                      title=f"{Path(checkpoint_path).name} ({report['source']} → {report['trained_target']}, "
                            f"{report['method']}) on {report['target']}")
        print(f"wrote {directory / 'eval.json'}")
    return report


@one_line_errors
def main(args: list[str]) -> int:
    if args[:1] in (["-h"], ["--help"]):
        print(EVAL_HELP, end="")
        return 0
    checkpoint, target, output_dir, overrides = parse_args(args)
    evaluate(checkpoint, target, overrides, output_dir)
    return 0
