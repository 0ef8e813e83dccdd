"""Callbacks that keep a run recoverable: random states in every checkpoint (exact resume),
a stop with one line when a loss turns NaN/inf (before broken weights are saved), and Ctrl-C
that saves a checkpoint and says how to continue."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import ClassVar

import pytorch_lightning as pl
import torch

from lepton_cli.checkpoints import last_checkpoint
from lepton_cli.errors import LeptonError

INTERRUPTED_EXIT_CODE = 130  # what a shell reports for a process stopped by Ctrl-C


def resume_command(run_dir: Path) -> str:
    return f"lepton train resume={Path(run_dir).resolve()}"


class RunInterrupted(LeptonError):
    """Ctrl-C: a checkpoint was saved; the message says how to continue."""

    exit_code = INTERRUPTED_EXIT_CODE


class RandomStateInCheckpoint(pl.Callback):
    """Saves Python's, NumPy's and torch's random states in each checkpoint and restores them on
    resume, so the shuffling and augmentations after an epoch-boundary checkpoint are the same
    as in an uninterrupted run."""

    def state_dict(self) -> dict:
        import numpy as np

        name, keys, position, has_gauss, gauss = np.random.get_state()
        version, python_state, python_gauss = random.getstate()
        return {"python": [version, list(python_state), python_gauss],
                "numpy": [name, torch.from_numpy(keys.astype("int64")), position, has_gauss, gauss],
                "torch": torch.random.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, state: dict) -> None:
        import numpy as np

        version, python_state, python_gauss = state["python"]
        random.setstate((version, tuple(python_state), python_gauss))
        name, keys, position, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy().astype("uint32"), position, has_gauss, gauss))
        torch.random.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])

class NonFiniteLossGuard(pl.Callback):
    """Stops training with a `LeptonError` when a loss term becomes NaN or inf, before a
    checkpoint with broken weights is written: the last checkpoint on disk stays a good one.

    Each step only records, on the device, the first step at which each term was non-finite
    (no host sync); the host reads that once at steps where a checkpoint or a log line is due
    and at epoch ends, i.e. once per `log_every_n_steps` or checkpoint interval. The price: the
    run can go on for up to that many steps after the loss broke."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.first_bad: dict[str, torch.Tensor] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        terms = dict(getattr(pl_module, "last_losses", None) or {})
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            terms.setdefault("loss", loss.detach())
        step = trainer.global_step
        for name, value in terms.items():
            bad = ~torch.isfinite(value.detach()).all()
            current = self.first_bad.get(name)
            if current is None:
                current = torch.full((), -1, dtype=torch.long, device=value.device)
            self.first_bad[name] = torch.where(bad & (current < 0), torch.full_like(current, step), current)
        if self._check_due(trainer, step):
            self.check(trainer, pl_module)

    @staticmethod
    def _check_due(trainer, step: int) -> bool:
        intervals = [trainer.log_every_n_steps or 1]
        intervals += [getattr(cb, "_every_n_train_steps", 0) for cb in trainer.checkpoint_callbacks]
        return any(n and step % n == 0 for n in intervals)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer, pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.training or trainer.state.fn == "fit":
            self.check(trainer, pl_module)

    def check(self, trainer, pl_module) -> None:
        if not self.first_bad:
            return
        names = list(self.first_bad)
        steps = torch.stack([self.first_bad[n].cpu() for n in names]).tolist()  # the one host sync
        broken = [(s, n) for s, n in zip(steps, names) if s >= 0]
        if not broken:
            return
        step, name = min(broken, key=lambda item: (item[0], item[1] == "loss"))
        lr = getattr(getattr(pl_module, "hparams", None), "lr", None)
        saved = last_checkpoint(self.run_dir)
        keep = f"the last good checkpoint is {saved}" if saved.is_file() else "no checkpoint was written"
        raise LeptonError(f"training stopped: loss term train/{name} became NaN or inf at step {step}; {keep}. "
                          f"Lower method.lr (now {lr}), or try precision=32-true / gradient_clip_val=1.0")

class SaveOnInterrupt(pl.Callback):
    """Ctrl-C (SIGINT) or SIGTERM (kill, timeout, a cluster's preemption): finish the current step,
    save `last.ckpt`, stop with 130 (SIGINT) or 143 (SIGTERM) and the command that continues the
    run. A second signal stops at once."""

    SIGNALS: ClassVar[dict[int, tuple[str, int]]] = {signal.SIGINT: ("Ctrl-C", 130), signal.SIGTERM: ("SIGTERM", 143)}

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.received: int | None = None
        self.previous: dict[int, object] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        # Not on_fit_start: Lightning installs its own SIGTERM handler after that hook, chaining ours,
        # and then stops with SystemExit(0) (SIGTERMException) when the signal lands after our
        # on_train_batch_end (e.g. while a step checkpoint is written): no checkpoint, exit code 0.
        # Installed here, after Lightning's, ours alone decides.
        if trainer.world_size == 1 and trainer.is_global_zero and not trainer.fast_dev_run:
            try:
                self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
            except ValueError:  # not the main thread: leave the signals as they are
                self.previous = {}

    def _handle(self, signum, frame) -> None:
        name, _ = self.SIGNALS[signum]
        if self.received is not None:
            self._restore()
            raise KeyboardInterrupt
        self.received = signum
        print(f"\nlepton: {name}: saving a checkpoint after this step ({name} again to stop at once)", flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.received is None:
            return
        guard = next((cb for cb in trainer.callbacks if isinstance(cb, NonFiniteLossGuard)), None)
        if guard is not None:
            guard.check(trainer, pl_module)  # never save broken weights
        path = last_checkpoint(self.run_dir)
        trainer.save_checkpoint(path)
        name, exit_code = self.SIGNALS[self.received]
        error = RunInterrupted(f"{name}: interrupted at step {trainer.global_step}; checkpoint saved to {path}. "
                               f"Continue with: {resume_command(self.run_dir)}")
        error.exit_code = exit_code
        raise error

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}


def reliability_callbacks(run_dir: Path) -> list[pl.Callback]:
    return [RandomStateInCheckpoint(), NonFiniteLossGuard(run_dir), SaveOnInterrupt(run_dir)]
