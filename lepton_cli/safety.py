"""Reliability: config checks before anything heavy runs, run directories that are never
overwritten, resuming an interrupted run, atomic writes, Ctrl-C, non-finite losses and files
that are loaded without running their code.

`train.main` calls `prepare_args` before Hydra parses the command line; `train.run` calls
`validate` first, `check_run_dir`, and adds `safety_callbacks` and `AtomicCheckpointIO` to the
Trainer. Torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import random
import signal
import tempfile
from pathlib import Path
from typing import Any

from lepton_cli.errors import LeptonError

# Numeric config values checked by the pattern of their dotted key (fnmatch), whatever the method
# or data set: a new method's `threshold` or `lr` is checked without a rule of its own.
RANGE_RULES: list[tuple[tuple[str, ...], str]] = [
    (("*.lr", "*_lr", "*batch_size", "data.steps_per_epoch", "*image_size", "*train_size", "*test_size",
      "method.*epochs", "*temperature", "trainer.log_every_n_steps", "trainer.devices", "trainer.num_nodes"), "> 0"),
    (("*weight_decay", "*_mult", "*trade_off*", "*weight", "*rampup", "data.num_workers", "*every_n_train_steps",
      "*warmup*", "*labels_per_class", "*gamma", "*power"), ">= 0"),
    (("*threshold*", "*confidence*", "*fraction", "*_prob*", "*probability*", "*dropout*", "*momentum", "*ema*"),
     "in [0, 1]"),
]
CHANNELS = (1, 3, "auto")
GPU_ACCELERATORS = ("gpu", "cuda")
INTERRUPTED_EXIT_CODE = 130  # what a shell reports for a process stopped by Ctrl-C
INSPECT_FLAGS = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "-m", "--multirun",
                 "--shell-completion", "-sc")


# ---- config values ----------------------------------------------------------------------------
def validate(cfg) -> None:
    """Check the composed config before any data is read; one `LeptonError` for the first problem."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True)
    for key, value in _numeric_leaves(values):
        _check_range(key, value)
    channels = values.get("data", {}).get("channels")
    if channels not in CHANNELS:
        raise LeptonError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels!r}; set data.channels=1, 3 or auto")
    max_epochs = values.get("trainer", {}).get("max_epochs")
    if isinstance(max_epochs, int) and (max_epochs == 0 or max_epochs < -1):
        raise LeptonError(f"trainer.max_epochs must be at least 1 (or -1: until max_steps), got {max_epochs}; "
                          "set trainer.max_epochs=N")
    _check_accelerator(values.get("trainer", {}))
    for role in ("student", "teacher"):
        checkpoint = (values.get(role) or {}).get("checkpoint")
        if checkpoint:
            check_checkpoint_file(checkpoint, f"{role}.checkpoint")


def _numeric_leaves(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_leaves(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix, node


def _check_range(key: str, value: float) -> None:
    for patterns, rule in RANGE_RULES:
        if not any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns):
            continue
        ok = {"> 0": value > 0, ">= 0": value >= 0, "in [0, 1]": 0 <= value <= 1}[rule]
        if not ok:
            raise LeptonError(f"{key} must be {rule}, got {value}; set {key}=VALUE with a value {rule}")
        return


def _check_accelerator(trainer: dict) -> None:
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    if not torch.cuda.is_available():
        raise LeptonError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU "
                          "(torch.cuda.is_available() is False); use trainer=cpu")


# ---- files that are loaded ----------------------------------------------------------------------
def safe_load(path: str | Path, what: str) -> Any:
    """`torch.load(weights_only=True)` with one-line errors: a missing file, a file that would
    run code when unpickled (refused, never executed) and an unreadable file each say what to do."""
    import pickle

    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise LeptonError(f"{what} {path} does not exist; give the path of a .ckpt written by lepton train "
                          "(runs/<run>/checkpoints/last.ckpt)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # garbage bytes fail in the unpickler too, without a GLOBAL
            raise LeptonError(f"{what} {path} is not a readable checkpoint (UnpicklingError); it may be truncated "
                              "or of another format: give a .ckpt written by lepton train") from None
        first = next((line.strip() for line in str(error).splitlines() if "global" in line.lower()), "")
        raise LeptonError(f"refused to load {what} {path}: it holds Python objects that unpickling would execute, "
                          f"not only weights ({first[:120] or 'UnpicklingError'}); Lepton loads with weights_only=True: "
                          "use a checkpoint written by lepton train and never load files from untrusted sources") from None
    except Exception as error:  # noqa: BLE001 - truncated, not a zip, not a torch file: one answer
        raise LeptonError(f"{what} {path} is not a readable checkpoint ({type(error).__name__}); it may be "
                          "truncated or of another format: give a .ckpt written by lepton train") from None


def check_checkpoint_file(path: str | Path, what: str) -> dict:
    """The weights of a Lepton/Lightning checkpoint or a plain state dict (safely loaded)."""
    saved = safe_load(path, what)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not state or not all(hasattr(v, "shape") for v in state.values()):
        raise LeptonError(f"{what} {Path(path).expanduser()} holds no weights (no state dict of tensors); "
                          "give a .ckpt written by lepton train")
    return state


def check_student_checkpoint_fits(cfg) -> None:
    """A student checkpoint of another architecture fails here with one line, not deep in torch.
    Called once the data has fixed `data.image_size` and `data.channels`."""
    from hydra.utils import instantiate

    path = cfg.student.get("checkpoint")
    if not path:
        return
    state = check_checkpoint_file(path, "student.checkpoint")
    weights = {k.removeprefix("model.").removeprefix("backbone."): v for k, v in state.items()
               if k.startswith(("model.backbone.", "backbone."))} or state
    expected = instantiate(cfg.student, checkpoint=None).state_dict()
    architecture = cfg.student.get("name") or str(cfg.student._target_).rsplit(".", 1)[-1]
    missing = [k for k in expected if k not in weights]
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        example = (missing or wrong)[0]
        raise LeptonError(f"student.checkpoint {path} does not fit student={architecture} with data.channels="
                          f"{cfg.data.channels} and data.image_size={cfg.data.image_size} ({len(missing)} missing, "
                          f"{len(wrong)} mis-shaped weights, e.g. {example}); set student= (and data.*) to what "
                          "the checkpoint was trained with")


# ---- run directories and resuming -------------------------------------------------------------------
def _value_of(args: list[str], key: str) -> str | None:
    found = None
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~") == key:
            found = value
    return found


def _key_of(arg: str) -> str:
    return arg.partition("=")[0].lstrip("+~")


def prepare_args(args: list[str]) -> list[str]:
    """`resume=DIR` → the overrides DIR was started with, then the new ones, then
    `hydra.run.dir=DIR`; and a run directory given by hydra.run.dir that cannot be used (a finished
    run, an interrupted one without resume=, an unwritable place) is refused before Hydra writes to it."""
    if any(arg.split("=")[0] in INSPECT_FLAGS for arg in args):
        return args
    resume = _value_of(args, "resume")
    if resume:
        run_dir = Path(resume).expanduser().resolve()
        check_resumable(run_dir)
        given = [a for a in args if _key_of(a) not in ("resume", "hydra.run.dir")]
        given_keys = {_key_of(a) for a in given}
        saved = [a for a in saved_overrides(run_dir) if _key_of(a) not in ("resume", *given_keys)]
        return [*saved, *given, f"resume={run_dir}", f"hydra.run.dir={run_dir}"]
    run_dir = _value_of(args, "hydra.run.dir")
    check_writable(Path(run_dir or "runs").expanduser())
    if run_dir:
        check_run_dir(Path(run_dir).expanduser(), resuming=False)
    return args


def saved_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides a run was started with (Hydra keeps them in .hydra/overrides.yaml)."""
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = yaml.safe_load(path.read_text()) or []
    return [str(item) for item in loaded]


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def check_resumable(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise LeptonError(f"resume={run_dir}: no such run directory; give the directory of the interrupted run "
                          "(runs/<date>_<time>_...)")
    if (run_dir / "metrics.json").exists():
        raise LeptonError(f"resume={run_dir}: that run already finished (metrics.json exists); nothing to resume")
    if not last_checkpoint(run_dir).is_file():
        raise LeptonError(f"resume={run_dir}: no checkpoints/last.ckpt there (the run stopped before its first "
                          "checkpoint); start it again without resume=")


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """A finished run is never overwritten; an interrupted one only continued with resume=."""
    if (run_dir / "metrics.json").exists():
        raise LeptonError(f"{run_dir} already holds a finished run; choose a new hydra.run.dir (nothing was overwritten)")
    checkpoints = run_dir / "checkpoints"
    if not resuming and checkpoints.is_dir() and any(checkpoints.glob("*.ckpt")):
        raise LeptonError(f"{run_dir} holds an interrupted run; continue it with `lepton train resume={run_dir.resolve()}` "
                          "or choose a new hydra.run.dir (nothing was overwritten)")


def check_writable(path: Path) -> None:
    """The run directory can be created: its nearest existing ancestor is a writable directory."""
    ancestor = path.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise LeptonError(f"cannot create the run directory {path}: {ancestor} is a file, not a directory; "
                          "choose another hydra.run.dir")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise LeptonError(f"cannot create the run directory {path}: {ancestor} is not writable; "
                          "choose another hydra.run.dir")


def resume_command(run_dir: Path) -> str:
    return f"lepton train resume={Path(run_dir).resolve()}"


# ---- atomic writes ----------------------------------------------------------------------------------
def _write_all(handle, data: bytes, path: Path) -> None:
    """Write and flush to disk (a full disk often reports only here). `path` is the final name."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def write_atomically(path: str | Path, data: bytes | str) -> None:
    """Write `data` to `path` via a temp file in the same folder and a rename: readers (and a
    resumed run) see the old file or the whole new one, never half of it. A failed write (disk
    full, no permission) leaves nothing behind and becomes a `LeptonError` naming the file."""
    path = Path(path)
    data = data.encode() if isinstance(data, str) else data
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file gets the usual permissions
        with os.fdopen(fd, "wb") as handle:
            _write_all(handle, data, path)
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise LeptonError(f"could not write {path}: {describe_os_error(error)}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def describe_os_error(error: OSError) -> str:
    fixes = {
        errno.ENOSPC: "no space left on the device; free some space (or write elsewhere with hydra.run.dir=) "
                      "and continue with resume=",
        errno.EACCES: "permission denied; choose a writable hydra.run.dir",
        errno.EROFS: "the file system is read-only; choose a writable hydra.run.dir",
        errno.ENOTDIR: "a part of the path is a file, not a directory; choose another hydra.run.dir",
        errno.EDQUOT: "disk quota exceeded; free some space and continue with resume=",
    }
    return fixes.get(error.errno, f"{error.strerror or error}; check the path and free space")


def atomic_checkpoint_io():
    """A Lightning CheckpointIO that writes checkpoints with `write_atomically` and reads them with
    `weights_only=True` (a resumed checkpoint cannot run code)."""
    import io

    import torch
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            write_atomically(path, buffer.getvalue())

        def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
            return safe_load(path, "checkpoint")

    return AtomicCheckpointIO()


# ---- callbacks --------------------------------------------------------------------------------------
class RunInterrupted(LeptonError):
    """Ctrl-C: a checkpoint was saved; the message says how to continue."""

    exit_code = INTERRUPTED_EXIT_CODE


def safety_callbacks(run_dir: Path) -> list:
    import pytorch_lightning as pl
    import torch

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

        def __init__(self):
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
            saved = last_checkpoint(run_dir)
            keep = f"the last good checkpoint is {saved}" if saved.is_file() else "no checkpoint was written"
            raise LeptonError(f"training stopped: loss term train/{name} became NaN or inf at step {step}; {keep}. "
                              f"Lower method.lr (now {lr}), or try precision=32-true / gradient_clip_val=1.0")

    class SaveOnInterrupt(pl.Callback):
        """First Ctrl-C: finish the current step, save `last.ckpt`, stop with exit code 130 and
        the command that continues the run. A second Ctrl-C stops at once (Lightning's default)."""

        def __init__(self):
            self.requested = False
            self.previous = None

        def on_fit_start(self, trainer, pl_module) -> None:
            if trainer.world_size == 1 and trainer.is_global_zero and not trainer.fast_dev_run:
                try:
                    self.previous = signal.signal(signal.SIGINT, self._handle)
                except ValueError:  # not the main thread: leave Ctrl-C as it is
                    self.previous = None

        def _handle(self, signum, frame) -> None:
            if self.requested:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.requested = True
            print("\nlepton: Ctrl-C: saving a checkpoint after this step (Ctrl-C again to stop at once)", flush=True)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
            if not self.requested:
                return
            guard = next((cb for cb in trainer.callbacks if isinstance(cb, NonFiniteLossGuard)), None)
            if guard is not None:
                guard.check(trainer, pl_module)  # never save broken weights
            path = last_checkpoint(run_dir)
            trainer.save_checkpoint(path)
            raise RunInterrupted(f"interrupted at step {trainer.global_step}; checkpoint saved to {path}. "
                                 f"Continue with: {resume_command(run_dir)}")

        def on_fit_end(self, trainer, pl_module) -> None:
            self.teardown(trainer, pl_module, "fit")

        def teardown(self, trainer, pl_module, stage: str) -> None:
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)
                self.previous = None

    return [RandomStateInCheckpoint(), NonFiniteLossGuard(), SaveOnInterrupt()]


def unwrap_instantiation_error(error: BaseException) -> LeptonError | None:
    """The `LeptonError` that Hydra's InstantiationException wraps (raised in a constructor), if any."""
    seen = error
    while seen is not None:
        if isinstance(seen, LeptonError):
            return seen
        seen = seen.__cause__
    return None
