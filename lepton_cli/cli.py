"""The `lepton` entrypoint: parse the subcommand and hand over.

Only the standard library and `lepton_cli.config` are imported here, so `lepton --help` and
`lepton list` answer at once; torch is imported by the commands that train.
"""

from __future__ import annotations

import os
import shlex
import sys

from lepton_cli import __version__
from lepton_cli.config import USER_GROUPS, group_options, searchpath_args, user_config_dirs, user_groups
from lepton_cli.errors import LeptonError, one_line_errors

USAGE = """\
usage: lepton COMMAND [OVERRIDES...]
       lepton --version | --info | --completion bash|zsh

Cross-domain learning experiments from config: train on a labelled source domain, adapt to a target.

commands:
  train [OVERRIDES...]   run one experiment        lepton train source=cifar10 target=stl10 method=distill
  list [GROUP]           list config options       lepton list method
  sweep [OVERRIDES...]   grid/search + leaderboard lepton sweep method=source_only,dann seed=0,1,2
  eval checkpoint=PATH   evaluate a saved model    lepton eval checkpoint=runs/<run>/checkpoints/last.ckpt target=mnist
  report DIR             pictures + report.md      lepton report runs/<run>   (or a sweep directory)

Overrides are Hydra's: `group=option` picks a config file, `key=value` sets a value
(`method.lr=1e-3`, any Trainer argument as `trainer.X=`), `+key=value` adds one, `--cfg job` prints
the composed config without running, `--config-dir DIR` adds your own config groups and options.
`lepton COMMAND --help` says more about one command.

  --version            the version
  --info               versions of Python, torch, Lightning, Hydra and the accelerator found
  --completion SHELL   a completion script: eval "$(lepton --completion bash)" (or zsh) in your shell's rc file
  -v, --verbose        (before COMMAND) keep Lightning's tips and library warnings in the output
"""

TRAIN_HELP = """\
usage: lepton train [OVERRIDES...] [--cfg job|all] [--hydra-help]

Compose the config from conf/ with the overrides, then train, evaluate on the source and target
test splits, and write config.yaml, metrics.json, checkpoints and logs into the run directory
(runs/<date>_<time>_<source>_to_<target>_<method>, or hydra.run.dir=DIR).

groups (`lepton list GROUP` shows the options):
  source=, target=      data sets          (default synth_digits → digits, fully offline)
  student=, teacher=    backbones          (small_cnn, resnet18, resnet50, timm student.name=NAME)
  method=               adaptation method  (default source_only)
  trainer=              cpu | gpu | ddp | debug
  logger=               csv (default) | tensorboard | wandb | mlflow | none
  augment=, callbacks=, selection=
  trainer.X=VALUE       any argument of pytorch_lightning.Trainer (trainer.gradient_clip_val=1.0)
  --config-dir DIR      your own options beside Lepton's: DIR/method/mine.yaml is method=mine

examples:
  lepton train                                       the default synthetic → real digits experiment
  lepton train method.lr=3e-3 trainer.max_epochs=20 seed=1
  lepton train trainer=debug                         one batch of train/val/test, in seconds
  lepton train source=mnist target=usps data.root=~/data
  lepton train --cfg job                             print the composed config, run nothing

Set LEPTON_DEBUG=1 to see tracebacks behind error messages.
"""


LIST_HELP = """\
usage: lepton list [GROUP] [--config-dir DIR]

The options of each config group (or of GROUP), each with the first comment line of its file.
With --config-dir DIR (or hydra.searchpath=[file://DIR]) your own options and groups are listed too.

groups: {groups}
"""

COMMANDS = ("train", "list", "sweep", "eval", "report")


def list_command(args: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in args):
        print(LIST_HELP.format(groups=", ".join(USER_GROUPS)), end="")
        return 0
    args = searchpath_args(args)
    user_dirs = user_config_dirs(args)
    args = [arg for arg in args if not arg.startswith("hydra.searchpath=")]
    known = [*USER_GROUPS, *user_groups(user_dirs)]
    groups = [g for g in known if g not in ("target", "teacher")]
    if args:
        if args[0] not in known or len(args) > 1:
            raise LeptonError(f"unknown group {' '.join(args)!r}; choose one of: {', '.join(known)}")
        groups = [args[0]]
    for group in groups:
        title = {"source": "source= / target=  (data sets)", "student": "student= / teacher=  (backbones)"}.get(group, f"{group}=")
        print(title)
        options = group_options(group, user_dirs)
        width = max(map(len, options), default=0)
        for name, description in options.items():
            print(f"  {name:<{width}}  {description}")
        print()
    return 0


def info() -> str:
    """Versions and the accelerator: what a bug report needs."""
    import platform

    import hydra
    import pytorch_lightning as pl
    import torch

    if torch.cuda.is_available():
        device = f"CUDA {torch.version.cuda}: " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    elif torch.backends.mps.is_available():
        device = "Apple MPS"
    else:
        device = f"CPU only ({os.cpu_count()} cores)"
    return "\n".join([f"lepton {__version__}", f"python {platform.python_version()} ({sys.executable})",
                      f"torch {torch.__version__}", f"pytorch-lightning {pl.__version__}", f"hydra-core {hydra.__version__}",
                      f"platform {platform.platform()}", f"device {device}"])


def completion_script(shell: str) -> str:
    """A script that makes the shell ask `lepton __complete LINE` for candidates. zsh runs the bash
    one through bashcompinit; bash splits words at `=`, zsh does not (COMP_WORDBREAKS is passed)."""
    if shell not in ("bash", "zsh"):
        raise LeptonError(f"--completion takes bash or zsh, got {shell!r}; e.g. eval \"$(lepton --completion bash)\"")
    script = """_lepton_complete() {
    local IFS=$'\\n'
    COMPREPLY=($(lepton __complete "${COMP_LINE:0:COMP_POINT}" "${COMP_WORDBREAKS-}" 2>/dev/null))
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
    return 0
}
complete -o default -F _lepton_complete lepton
"""
    return ("autoload -U +X bashcompinit && bashcompinit\n" if shell == "zsh" else "") + script


def complete(line: str, wordbreaks: str = "") -> list[str]:
    """Candidates for the last word of a `lepton ...` command line: commands, `group=`, a group's
    options, and config keys (`method.` → `method.lr=`, composed from the defaults). Returned as
    the shell replaces them: after the last word-break character bash splits at (`=`, `:`)."""
    try:
        words = shlex.split(line)
    except ValueError:  # an open quote
        words = line.split()
    current = "" if not words or line.endswith(" ") else words.pop()
    words = words[1:]  # the program's name
    if not words:
        found = [c for c in (*COMMANDS, "--help", "--version", "--info", "--completion") if c.startswith(current)]
    elif words[0] == "list":
        found = [g for g in USER_GROUPS if g.startswith(current)] if len(words) == 1 else []
    elif words[0] in ("train", "sweep", "eval"):
        found = _complete_override(current)
    else:
        found = []
    cut = max((current.rfind(char) for char in wordbreaks if char in "=:"), default=-1) + 1
    return [candidate[cut:] for candidate in found]


def _complete_override(current: str) -> list[str]:
    key, sep, value = current.partition("=")
    if sep:
        group = key.lstrip("+~")
        return [f"{key}={o}" for o in group_options(group) if o.startswith(value)] if group in USER_GROUPS else []
    found = [f"{g}=" for g in USER_GROUPS if g.startswith(current)]
    if "." in current or not found:
        from omegaconf import OmegaConf

        from lepton_cli.config import compose_job

        def keys(node, prefix=""):
            for name, item in node.items():
                path = f"{prefix}{name}"
                yield from keys(item, f"{path}.") if isinstance(item, dict) else [f"{path}="]

        found += [k for k in keys(OmegaConf.to_container(compose_job(()), resolve=False)) if k.startswith(current)]
    return found


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-v"], ["--verbose"]):
        os.environ["LEPTON_VERBOSE"] = "1"  # read by lepton_cli.train, which this process may exec
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("--version", "-V"):
        print(f"lepton {__version__}")
        return 0
    if command == "--info":
        print(info())
        return 0
    if command == "--completion":
        print(completion_script(rest[0] if rest else ""), end="")
        return 0
    if command == "__complete":
        print("\n".join(complete(*rest[:2])))
        return 0
    if command == "train":
        if rest[:1] in (["-h"], ["--help"]):
            print(TRAIN_HELP, end="")
            return 0
        if any(arg in ("-v", "--verbose") for arg in rest):  # Hydra's parser does not know it
            os.environ["LEPTON_VERBOSE"] = "1"
            rest = [arg for arg in rest if arg not in ("-v", "--verbose")]
        # Exec the Hydra app as a module so Lightning's DDP launcher can restart it on each rank.
        os.execv(sys.executable, [sys.executable, "-m", "lepton_cli.train", *rest])
    if command == "sweep":
        from lepton_cli.sweep import main as sweep_main  # imports no torch: runs are subprocesses

        return sweep_main(rest)
    if command == "list":
        return list_command(rest)
    if command == "eval":
        from lepton_cli.evaluate import main as eval_main  # torch is imported inside, after --help

        return eval_main(rest)
    if command == "report":
        from lepton_cli.report import main as report_main

        return report_main(rest)
    raise LeptonError(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)} (see lepton --help)")


def entry_point() -> int:
    """The `lepton` script: `main`, quiet when its output is cut short (`lepton list | head`)."""
    try:
        return main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 1


if __name__ == "__main__":
    sys.exit(entry_point())
