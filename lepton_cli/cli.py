"""The `lepton` entrypoint: parse the subcommand and hand over.

Only the standard library and `lepton_cli.config` are imported here, so `lepton --help` and
`lepton list` answer at once; torch is imported by the commands that train.
"""

from __future__ import annotations

import os
import sys

from lepton_cli.config import USER_GROUPS, group_options
from lepton_cli.errors import LeptonError, one_line_errors

USAGE = """\
usage: lepton COMMAND [OVERRIDES...]

Cross-domain learning experiments from config: train on a labelled source domain, adapt to a target.

commands:
  train [OVERRIDES...]   run one experiment        lepton train source=cifar10 target=stl10 method=distill
  list [GROUP]           list config options       lepton list method
  sweep [OVERRIDES...]   grid/search + leaderboard lepton sweep method=source_only,dann seed=0,1,2
  eval checkpoint=PATH   evaluate a saved model    lepton eval checkpoint=runs/<run>/checkpoints/last.ckpt target=mnist
  report DIR             pictures + report.md      lepton report runs/<run>   (or a sweep directory)

Overrides are Hydra's: `group=option` picks a config file, `key=value` sets a value
(`method.lr=1e-3`), `+key=value` adds one, `--cfg job` prints the composed config without running.
`lepton COMMAND --help` says more about one command.
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
  logger=, augment=, callbacks=

examples:
  lepton train                                       the default synthetic → real digits experiment
  lepton train method.lr=3e-3 trainer.max_epochs=20 seed=1
  lepton train trainer=debug                         one batch of train/val/test, in seconds
  lepton train source=mnist target=usps data.root=~/data
  lepton train --cfg job                             print the composed config, run nothing

Set LEPTON_DEBUG=1 to see tracebacks behind error messages.
"""


def list_command(args: list[str]) -> int:
    groups = [g for g in USER_GROUPS if g not in ("target", "teacher")]
    if args:
        if args[0] not in USER_GROUPS:
            raise LeptonError(f"unknown group {args[0]!r}; choose one of: {', '.join(USER_GROUPS)}")
        groups = [args[0]]
    for group in groups:
        title = {"source": "source= / target=  (data sets)", "student": "student= / teacher=  (backbones)"}.get(group, f"{group}=")
        print(title)
        options = group_options(group)
        width = max(map(len, options), default=0)
        for name, description in options.items():
            print(f"  {name:<{width}}  {description}")
        print()
    return 0


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "train":
        if rest[:1] in (["-h"], ["--help"]):
            print(TRAIN_HELP, end="")
            return 0
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
    raise LeptonError(f"unknown command {command!r}; choose one of: train, sweep, list, eval, report (see lepton --help)")


if __name__ == "__main__":
    sys.exit(main())
