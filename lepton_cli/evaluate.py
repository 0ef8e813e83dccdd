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
usage: lepton eval checkpoint=PATH [target=NAME] [attack=fgsm|pgd attack.eps=E [attack.steps=N]] [KEY=VALUE...] [hydra.run.dir=DIR]

Evaluate a saved model on the target test split: the run's own target, or any data set config
(`lepton list source` names them; classes are matched by name with the checkpoint's classes, as in
training). Prints accuracy, macro recall, macro F1 and per-class accuracy, and writes eval.json
beside the checkpoint (or into hydra.run.dir=DIR).

  checkpoint=PATH        a .ckpt written by `lepton train` (e.g. runs/<run>/checkpoints/last.ckpt)
  target=NAME            another data set config, e.g. target=mnist data.root=~/data
  KEY=VALUE              changes to the run's stored config, e.g. data.root=~/data data.eval_batch_size=256
  attack=fgsm|pgd        also report robust accuracy under an L-inf attack on the test images (values in
                         [0, 1]): attack.eps=0.1 (required), attack.steps=10 (pgd; fgsm is 1 step),
                         attack.step_size=S (pgd; default 2.5 * eps / steps)

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


ATTACK_KEYS = ("attack", "attack.eps", "attack.steps", "attack.step_size")


def parse_attack(args: list[str]) -> tuple[dict | None, list[str]]:
    """(`{"name", "eps", "steps", "step_size"}` of `attack=...`, or None; the other arguments)."""
    from lepton_cli.losses.attacks import ATTACKS, DEFAULT_PGD_STEPS, check_attack

    given, rest = {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in ATTACK_KEYS:
            given[key.lstrip("+")] = value
        else:
            rest.append(arg)
    if not given:
        return None, rest
    name = given.get("attack")
    if name not in ATTACKS:
        raise LeptonError(f"attack= must be one of {', '.join(ATTACKS)} (got {name!r}); e.g. attack=pgd attack.eps=0.1")
    if "attack.eps" not in given:
        raise LeptonError(f"attack={name} needs its budget: attack.eps=E with E in (0, 1], e.g. attack.eps=0.1")

    def number(key: str, kind: type):
        try:
            return kind(given[key])
        except ValueError:
            raise LeptonError(f"{key}={given[key]!r} is not a{'n integer' if kind is int else ' number'}; e.g. "
                              f"{key}={'10' if kind is int else '0.1'}") from None

    steps = number("attack.steps", int) if "attack.steps" in given else (1 if name == "fgsm" else DEFAULT_PGD_STEPS)
    if name == "fgsm" and steps != 1:
        raise LeptonError(f"attack=fgsm is one step, got attack.steps={steps}; use attack=pgd for several")
    step_size = number("attack.step_size", float) if given.get("attack.step_size") not in (None, "null") else None
    attack = {"name": name, "eps": number("attack.eps", float), "steps": steps, "step_size": step_size}
    check_attack(attack["eps"], steps, step_size)
    return attack, rest


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
             output_dir: str | None = None, quiet: bool = False, attack: dict | None = None) -> dict:
    """Evaluate a checkpoint on a target test split; returns what eval.json holds. With `attack`
    (`parse_attack`), also the accuracy on adversarial versions of the same images
    (`target/robust_acc`), made in the un-normalised [0, 1] image space."""
    import torch

    from lepton_cli.builders.saved_model import (
        build_classifier,
        checkpoint_classes,
        checkpoint_modality,
        evaluation_split,
        load_checkpoint,
        local_config,
    )
    from lepton_cli.io import write_json_atomically
    from lepton_cli.losses.attacks import adversarial_examples
    from lepton_cli.methods.base import classification_metrics

    checkpoint = load_checkpoint(checkpoint_path)
    modality = checkpoint_modality(checkpoint["lepton_config"])
    if attack is not None and modality != "image":
        raise LeptonError(f"attack= perturbs images in [0, 1]; this checkpoint takes {modality} inputs: "
                          "evaluate it without attack=")
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
    def shared_logits(batch: torch.Tensor) -> torch.Tensor:
        return classifier(normalize(batch))[0][:, shared]

    robust_correct = 0
    for start in range(0, len(labels), batch_size):
        batch, batch_labels = images[start:start + batch_size], labels[start:start + batch_size]
        with torch.no_grad():
            metrics.update(shared_logits(batch), batch_labels)
        if attack:
            adversarial = adversarial_examples(shared_logits, batch, batch_labels, attack["eps"], attack["steps"],
                                               attack["step_size"])
            with torch.no_grad():
                robust_correct += int((shared_logits(adversarial).argmax(1) == batch_labels).sum())
    results = {f"target/{k}": (v.tolist() if v.ndim else float(v)) for k, v in metrics.compute().items()}
    if attack:
        results["target/robust_acc"] = robust_correct / len(labels)
    checkpoint_path = str(Path(checkpoint_path).expanduser().resolve())
    report = {**results, "classes": alignment.classes, "alignment": alignment.as_dict(), "checkpoint": checkpoint_path,
              "epoch": checkpoint.get("epoch"), "step": checkpoint.get("global_step"),
              "method": config["method"].get("name"), "source": config["source"]["name"],
              "target": target_config["name"], "trained_target": checkpoint["lepton_config"]["target"]["name"],
              "images": len(labels), **({"attack": attack} if attack else {})}
    directory = Path(output_dir).expanduser() if output_dir else Path(checkpoint_path).parent
    write_json_atomically(directory / "eval.json", report)
    if not quiet:
        from lepton_cli.reporting.tables import print_metrics

        print_metrics(results, alignment.classes,
                      title=f"{Path(checkpoint_path).name} ({report['source']} → {report['trained_target']}, "
                            f"{report['method']}) on {report['target']}")
        if attack:
            budget = f"eps={attack['eps']:g}" + (f", {attack['steps']} steps" if attack["steps"] > 1 else "")
            print(f"robust accuracy under {attack['name']} ({budget}, L-inf, images in [0, 1]): "
                  f"{100 * results['target/robust_acc']:.2f}% (clean: {100 * results['target/acc']:.2f}%)")
        print(f"wrote {directory / 'eval.json'}")
    return report


@one_line_errors
def main(args: list[str]) -> int:
    if args[:1] in (["-h"], ["--help"]):
        print(EVAL_HELP, end="")
        return 0
    attack, args = parse_attack(args)
    checkpoint, target, output_dir, overrides = parse_args(args)
    evaluate(checkpoint, target, overrides, output_dir, attack=attack)
    return 0
