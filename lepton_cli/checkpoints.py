"""Checkpoints: where a run keeps them, reading the weights in one (safely), checking that a
checkpoint fits the backbone it is meant for, and the Lightning CheckpointIO that writes them
atomically and reads them with `weights_only=True`."""

from __future__ import annotations

import io
from pathlib import Path

from lepton_cli.errors import LeptonError
from lepton_cli.io import safe_torch_load, write_atomically


def last_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def check_checkpoint_file(path: str | Path, what: str) -> dict:
    """The weights of a Lepton/Lightning checkpoint or a plain state dict (safely loaded)."""
    saved = safe_torch_load(path, what)
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


def check_resume_fits(method, path: str | Path) -> None:
    """`resume=DIR` with settings that change the model (another backbone, image size, channels)
    fails here with one line, before anything of the run is rewritten."""
    saved = check_checkpoint_file(path, "resume checkpoint")
    expected = method.state_dict()
    wrong = [k for k, v in expected.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    missing = [k for k in expected if k not in saved]
    if wrong or missing:
        example = (wrong or missing)[0]
        raise LeptonError(f"resume: the run's checkpoint {path} does not fit the model these settings build "
                          f"({len(wrong)} mis-shaped, {len(missing)} missing weights, e.g. {example}); resume with the "
                          "settings the run was started with (drop the overrides that change the model or the data shape)")


def atomic_checkpoint_io():
    """A Lightning CheckpointIO that writes checkpoints with `write_atomically` and reads them with
    `weights_only=True` (a resumed checkpoint cannot run code)."""
    import torch
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
            buffer = io.BytesIO()  # whole in memory first: a failed write leaves the old checkpoint untouched
            torch.save(checkpoint, buffer)
            write_atomically(path, buffer.getvalue())

        def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
            return safe_torch_load(path, "checkpoint")

    return AtomicCheckpointIO()
