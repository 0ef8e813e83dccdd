"""Several processes, one experiment: what DDP needs beyond `trainer=ddp`.

Three ways to start the ranks, one run directory each time:

- `lepton train trainer=ddp trainer.devices=N`: Lightning starts ranks 1..N-1 itself and passes
  them rank 0's `hydra.run.dir`;
- `torchrun --nproc-per-node N -m lepton_cli train trainer=ddp trainer.devices=N ...` and
  `srun --ntasks-per-node=N lepton train trainer=ddp trainer.devices=N trainer.num_nodes=M ...`:
  every rank composes the config itself, so `${now:...}` in the default run directory could differ
  by a second between ranks (Hydra #2070). `launcher_overrides` pins it to a name every rank
  derives alike from the launch: `runs/<launch id>_<run name>`, the launch id being torchrun's
  `--rdzv-id` (`TORCHELASTIC_RUN_ID`; `torchrun-<agent pid>` when it is left at "none") or
  `slurm-<job id>.<step id>`. An explicit `hydra.run.dir=` wins.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping

log = logging.getLogger("lepton")

# Set by torchrun/srun/Lightning for one process; a child that inherits them thinks it is a rank.
LAUNCH_VARIABLES = ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "RANK", "NODE_RANK", "GROUP_RANK",
                    "LOCAL_WORLD_SIZE", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")
# Set by srun for one task of a job step: a local run that inherited them inside a SLURM allocation would
# take itself for one of several ranks srun started, and Lightning would wait for the others.
SLURM_TASK_VARIABLES = ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_LOCALID",
                        "SLURM_NODEID", "SLURM_STEP_ID", "SLURM_STEPID")


def child_environment(keep_slurm: bool = False) -> dict[str, str]:
    """This process's environment for a training subprocess: no variables of a launch it is not part of.
    A task of a SLURM job keeps SLURM's task variables: Lightning takes its rank and world size from them."""
    dropped = {*LAUNCH_VARIABLES, "HYDRA_FULL_ERROR", "LEPTON_DEBUG", *(() if keep_slurm else SLURM_TASK_VARIABLES)}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def launch_id(env: Mapping[str, str] | None = None) -> str | None:
    """A name shared by all ranks of a torchrun or srun launch; None when this process was not
    started by one (a plain `lepton train`, or a rank Lightning started itself)."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env:
        run_id = env["TORCHELASTIC_RUN_ID"]
        # torchrun's default --rdzv-id is "none"; the ranks of one node share the agent as parent.
        return f"torchrun-{os.getppid()}" if run_id in ("", "none") else f"torchrun-{run_id}"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_ID" in env and "SLURM_JOB_ID" in env:
        return f"slurm-{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}"
    return None


def launcher_rank(env: Mapping[str, str] | None = None) -> int:
    """The global rank a torchrun or srun launch gave this process (0 otherwise)."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env:
        return int(env.get("RANK", 0))
    if launch_id(env) is not None:
        return int(env.get("SLURM_PROCID", 0))
    return 0


def is_child_rank(env: Mapping[str, str] | None = None) -> bool:
    """A process other than global rank 0: a rank Lightning's DDP launcher started (LOCAL_RANK or
    NODE_RANK > 0) or one that torchrun/srun started with a rank > 0. Rank 0 owns the run directory."""
    env = os.environ if env is None else env
    return int(env.get("LOCAL_RANK", "0")) > 0 or int(env.get("NODE_RANK", "0")) > 0 or launcher_rank(env) > 0


def launcher_overrides(overrides: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Hydra overrides that make all ranks of a torchrun/srun launch share one run directory, with
    Hydra's own files (`.hydra/`, `train.log`) written by rank 0 only; [] outside such a launch."""
    run_id = launch_id(env)
    if run_id is None:
        return []
    extra = []
    if not any(o.lstrip("+~").startswith("hydra.run.dir=") for o in overrides):
        extra.append(f"hydra.run.dir=runs/{run_id}_${{run_name}}")
    if not any(o.lstrip("+~").startswith("hydra.sweep.dir=") for o in overrides):
        extra.append(f"hydra.sweep.dir=runs/sweeps/{run_id}")
    rank = launcher_rank(env)
    if rank > 0:  # as Lightning does for the ranks it starts: no .hydra/ copy, a log file of its own
        extra += ["hydra.output_subdir=null", f"hydra.job.name=train_rank{rank}"]
    return extra


def prepare_trainer_config(cfg) -> None:
    """Adjust `cfg.trainer` (in place) for what the hardware can do: SyncBatchNorm needs CUDA, so
    `sync_batchnorm` is turned off (with a note) for CPU runs, where torch refuses it."""
    from omegaconf import open_dict

    trainer = cfg.trainer
    if not trainer.get("sync_batchnorm"):
        return
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator == "cpu" or (accelerator == "auto" and not _cuda_available()):
        with open_dict(trainer):
            trainer.sync_batchnorm = False
        log.info("trainer.sync_batchnorm=true needs GPUs; off for this CPU run (each rank keeps its own batch statistics)")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def describe_scale(batch_size: int, world_size: int, lr: float, lr_scaling: str, domains: int = 2) -> str:
    """The line stating the effective batch and learning rate, e.g. `per-rank batch 64 × 2 ranks =
    128 images per step per domain; lr 0.01 (lr_scaling=none)`."""
    effective_lr = lr * world_size if lr_scaling == "linear" else lr
    per = " per domain" if domains > 1 else ""
    rank_word = "rank" if world_size == 1 else "ranks"
    lr_text = f"lr {effective_lr:g} (lr_scaling={lr_scaling}"
    lr_text += f": {lr:g} × {world_size})" if lr_scaling == "linear" else ")"
    return f"per-rank batch {batch_size} × {world_size} {rank_word} = {batch_size * world_size} images per step{per}; {lr_text}"


def log_scale(trainer, cfg, datamodule) -> None:
    """Log the effective batch, learning rate and steps per epoch once, on rank 0."""
    if not trainer.is_global_zero:
        return
    world_size = trainer.world_size
    domains = 2 if getattr(datamodule, "use_target_train", True) else 1
    log.info(describe_scale(cfg.data.batch_size, world_size, cfg.method.lr, cfg.method.get("lr_scaling", "none"), domains))
    if world_size > 1:
        steps = math.ceil(cfg.data.steps_per_epoch * cfg.data.batch_size / world_size) // cfg.data.batch_size
        log.info("%d ranks share each epoch of data.steps_per_epoch=%d batches: %d steps per epoch on each rank",
                 world_size, cfg.data.steps_per_epoch, steps)


def eval_sampler(dataset, trainer):
    """A sampler that shards an evaluation set across ranks without repeating images, so that the
    synchronised metrics count each test image exactly once; None on one process (Lightning then
    keeps the loader as it is).

    A split with fewer images than ranks would leave some ranks without a batch, and the ranks
    would then disagree on which metrics to synchronise and wait for each other forever. Then every
    rank evaluates the whole (tiny) split instead: each image counts world-size times, which leaves
    accuracy, macro recall/F1 and per-class accuracy unchanged (all ratios of counts)."""
    if trainer is None or trainer.world_size <= 1:
        return None
    from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

    sampler_class = whole_split_sampler_class() if len(dataset) < trainer.world_size else UnrepeatedDistributedSampler
    return sampler_class(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)


@functools.cache
def whole_split_sampler_class():
    """The sampler class of `eval_sampler` for tiny splits (made on first use: torch is imported lazily)."""
    from torch.utils.data import DistributedSampler

    class WholeSplitOnEveryRank(DistributedSampler):
        """Every index on every rank, in order (see `eval_sampler`). A DistributedSampler, so that
        Lightning keeps it instead of putting a padding one in its place."""

        def __iter__(self):
            return iter(range(len(self.dataset)))

        def __len__(self) -> int:
            return len(self.dataset)

    return WholeSplitOnEveryRank


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """A seed for (run seed, rank, epoch): different for every rank and epoch, the same for the same
    three numbers, so a DDP run stays reproducible and resumes exactly from an epoch boundary."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, dtype=np.uint32)[0])


def seed_this_rank(trainer, epoch: int) -> None:
    """Under DDP, seed torch's generator (augmentations, dropout) per rank at the start of each
    epoch: `seed_everything` gives every rank the same seed, so without this all ranks draw the same
    augmentations and dropout masks and the extra ranks add no variety. One process: untouched (the
    run is exactly as before, and its random state resumes from checkpoints)."""
    if trainer is None or trainer.world_size <= 1:
        return
    import torch

    torch.manual_seed(rank_seed(int(os.environ.get("PL_GLOBAL_SEED", "0")), trainer.global_rank, epoch))


def mean_over_ranks(tensor):
    """The element-wise mean of `tensor` over all ranks (the tensor itself on one process), for
    statistics every rank must agree on, e.g. running class marginals estimated from each rank's
    batch. Not differentiable; call it under `torch.no_grad()`."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


def all_gather_uneven(pl_module, tensor):
    """Concatenate a tensor from all ranks along dim 0 when ranks hold different numbers of rows
    (the unrepeated evaluation sampler gives some ranks one image fewer); `all_gather` alone needs
    equal shapes and breaks the collective otherwise."""
    import torch
    from lightning_fabric.utilities.distributed import _gather_all_tensors

    if pl_module.trainer.world_size <= 1:
        return tensor
    return torch.cat(_gather_all_tensors(tensor))  # pads to the largest, gathers, trims


def broadcast_buffers_from_rank_zero(module) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics) before evaluating: without
    SyncBatchNorm (CPU) each rank's last training forward updates its own copy, so the ranks would
    evaluate slightly different models, none of them quite the one rank 0 saves in the checkpoint."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)

