"""A stand-in for `python -m lepton_cli.train` in sweep tests, as fast as a process can be.

    python tests/helpers/fake_train.py OVERRIDES... hydra.run.dir=DIR

Like the real training it holds `directory_lock(DIR, "run directory")` while it runs and writes
DIR/metrics.json atomically, with the keys `lepton_cli.train` writes (the last epoch's numbers and
`SelectionCallback.summary()`'s). The numbers make the labels and the validator disagree: target
accuracy grows with method.lr (0.5 + 10 × lr, + 0.001 × seed), while the validator's score
(entropy-like, lower is better) is lr itself, so the unsupervised choice is the smallest lr.

Environment: FAKE_TRAIN_SECONDS, how long to "train" (default 0); it writes DIR/fake_train.pid
first, so a test knows that it runs. SIGTERM ends it at once (Python's default).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lepton_cli.io import directory_lock, write_atomically, write_json_atomically


def fake_metrics(settings: dict[str, str]) -> dict:
    lr, seed = float(settings.get("method.lr", 0.01)), int(settings.get("seed", 0))
    acc = 0.5 + 10 * lr + 0.001 * seed
    return {"target/acc": acc, "target/f1_macro": acc - 0.05, "source/acc": 0.9, "method": settings.get("method", "source_only"),
            "seed": seed, "steps": 4, "wall_time_s": 0.1,
            "selection/name": "entropy", "selection/mode": "min", "selection/score": lr, "selection/rank_score": -lr,
            "selection/epoch": 0, "selection/step": 4, "selection/target/acc": acc - 0.01, "selection/target/f1_macro": acc - 0.06,
            "oracle/epoch": 0, "oracle/target/acc": acc + 0.01, "oracle/target/f1_macro": acc - 0.04}


def main(args: list[str]) -> int:
    settings = dict(arg.partition("=")[::2] for arg in args)
    run_dir = Path(settings.pop("hydra.run.dir").strip("'"))
    with directory_lock(run_dir, "run directory"):
        write_atomically(run_dir / "fake_train.pid", str(os.getpid()))
        time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))
        write_json_atomically(run_dir / "metrics.json", fake_metrics(settings))
    print("fake training done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
