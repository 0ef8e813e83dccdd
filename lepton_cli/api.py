"""Lepton from Python, for people who do not use the CLI:

    from lepton_cli import api

    metrics = api.train(["source=mnist", "target=usps", "method=dann"])   # what `lepton train` does
    metrics["target/acc"], metrics["run_dir"]
    model = api.load_model(metrics["run_dir"])      # images (uint8, or float in [0, 1]) → logits
    labels, mask = api.pseudo_labels(model, images, threshold=0.9)
    adversarial = api.adversarial_examples(model, images, labels, eps=0.1, steps=10)

`train` runs the very path of `lepton train` (a `python -m lepton_cli.train` subprocess, so
Lightning's DDP launcher, Hydra's logging and the run-directory checks behave as on the command
line) in a run directory settled before it starts, and returns its `metrics.json` with `run_dir`.
`model` is anything that maps images to logits: a Lepton method (its `forward` normalises
uint8 or [0, 1] float images itself), a `Classifier` (its `(logits, features)` are unpacked) or any
`nn.Module`. torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lepton_cli.errors import LeptonError

if TYPE_CHECKING:
    import torch

__all__ = ["adversarial_examples", "load_model", "pseudo_labels", "train"]


def train(overrides: list[str], verbose: bool = False) -> dict:
    """Train and test one experiment as `lepton train OVERRIDES` would; returns its metrics
    (`metrics.json`) with `run_dir` added. A mistake in the overrides, or any failure of the run,
    raises `LeptonError` with the one line `lepton train` would print. `verbose` shows the run's
    output (progress, tables) instead of keeping it quiet."""
    from lepton_cli.config import override_value, rewrite_overrides
    from lepton_cli.distributed import child_environment
    from lepton_cli.reporting.markdown import read_metrics
    from lepton_cli.run_dir import resolve_run_dir

    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise LeptonError(f"train() takes a list of KEY=VALUE strings, e.g. ['method=dann', 'seed=1'], got {overrides!r}")
    if any(o.startswith("-") for o in overrides):
        raise LeptonError("train() runs one experiment: flags (-m, --cfg, ...) belong to the lepton command line")
    # Settled here, so the metrics are read from where the run wrote them (its ${now:...} taken once);
    # resume=DIR continues in DIR.
    resume = [o.partition("=")[2] for o in overrides if o.partition("=")[0].lstrip("+~") == "resume"]
    run_dir = Path(resume[-1]).expanduser().resolve() if resume else resolve_run_dir(rewrite_overrides(list(overrides)))
    args = [o for o in overrides if o.partition("=")[0].lstrip("+~") != "hydra.run.dir"]
    command = [sys.executable, "-m", "lepton_cli.train", *args, f"hydra.run.dir={override_value(run_dir)}"]
    # Not the caller's launch variables (a notebook on a torchrun/SLURM rank): the run would take itself
    # for one rank of that launch and wait for the others. For several GPUs, pass trainer=ddp.
    result = subprocess.run(command, stdout=None if verbose else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=child_environment(), check=False)
    if verbose:
        sys.stderr.write(result.stderr)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        ours = [line.removeprefix("lepton: error: ") for line in lines if line.startswith("lepton: error: ")]
        if ours:
            raise LeptonError(ours[-1])
        raise LeptonError(f"lepton train failed (exit code {result.returncode}): {lines[-1] if lines else 'no output'}"
                          f"; run it with verbose=True, or `lepton train {' '.join(args)}`, to see why")
    return {**read_metrics(Path(run_dir) / "metrics.json"), "run_dir": str(run_dir)}


def load_model(path: str | Path) -> torch.nn.Module:
    """The model of a run directory (its selection pick when chosen without target labels, else
    `last.ckpt`, as `teacher.run=` takes it) or of a checkpoint file, in eval mode: it maps images
    (uint8 in [0, 255] or float in [0, 1], not normalised) to logits over `model.classes`; from an
    audio or bag-of-words run, raw waveforms or feature vectors (token runs are refused). Rebuilt
    through the allowlist of `lepton eval`: nothing the file names is run."""
    from torch import nn

    from lepton_cli.builders.saved_model import build_classifier, checkpoint_classes, load_checkpoint
    from lepton_cli.builders.teacher import run_checkpoint

    path = Path(path).expanduser()
    checkpoint = load_checkpoint(run_checkpoint(path)[0] if path.is_dir() else path)
    classifier, normalize = build_classifier(checkpoint)

    class SavedModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier, self.classes = classifier, checkpoint_classes(checkpoint)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.classifier(normalize(images))[0]

    return SavedModel().eval()


def _logits(model, images: torch.Tensor) -> torch.Tensor:
    output = model(images)
    return output[0] if isinstance(output, tuple | list) else output


def pseudo_labels(model, images: torch.Tensor, threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(the model's predicted class per image, a bool mask of the predictions whose softmax
    confidence is at least `threshold`), as FixMatch and `method=pseudo_label` keep them. The model
    runs in eval mode without gradients and is put back in the mode it was in."""
    import torch

    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise LeptonError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    was_training = getattr(model, "training", False)
    try:
        with torch.no_grad():
            probabilities = _logits(model.eval() if hasattr(model, "eval") else model, images).softmax(dim=1)
    finally:
        if was_training:
            model.train()
    confidence, labels = probabilities.max(dim=1)
    return labels, confidence >= threshold


def adversarial_examples(model, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 1,
                         step_size: float | None = None) -> torch.Tensor:
    """Adversarial images within `eps` of `images` in L∞ (image values in [0, 1]): FGSM when
    `steps` is 1, PGD otherwise (`lepton_cli.losses.attacks`). The model runs in eval mode and is put
    back in the mode it was in; its parameters get no gradient. Returns float images in [0, 1]."""
    from lepton_cli.losses.attacks import adversarial_examples as attack

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        return attack(lambda x: _logits(model, x), images, labels, eps, steps, step_size)
    finally:
        if was_training:
            model.train()
