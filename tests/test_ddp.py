"""DDP on CPU with gloo, 2 processes: sharded training data, exact evaluation, one run directory.

The 2-process runs go through subprocesses (`strategy=ddp` in-process would make Lightning
restart pytest itself) and run one after another (parallel launches race for a free port).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from lepton_cli.distributed import describe_scale, eval_sampler, launch_id, launcher_overrides
from tests.conftest import TINY
from tests.helpers.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
# An odd-sized source test set: 2 ranks hold 51 and 50 images, so repeated padding would show.
DDP_TINY = [*TINY, "source.test_size=101"]
METHOD_EXTRA = {"distill": ["method.teacher_epochs=1"]}


# ---- fast checks of the pieces ----------------------------------------------------------------
def test_torchrun_and_srun_ranks_agree_on_one_run_directory():
    torchrun = {"TORCHELASTIC_RUN_ID": "job7", "RANK": "0"}
    rank0 = launcher_overrides(["method=dann"], torchrun)
    rank1 = launcher_overrides(["method=dann"], {**torchrun, "RANK": "1"})
    assert rank0 == ["hydra.run.dir=runs/torchrun-job7_${run_name}", "hydra.sweep.dir=runs/sweeps/torchrun-job7"]
    assert rank1[:2] == rank0  # the same directory; rank 1 writes no .hydra/ and its own log file
    assert rank1[2:] == ["hydra.output_subdir=null", "hydra.job.name=train_rank1"]

    slurm = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "3", "SLURM_NTASKS": "8", "SLURM_PROCID": "5"}
    assert launch_id(slurm) == "slurm-42.3"
    assert "hydra.job.name=train_rank5" in launcher_overrides([], slurm)
    # An explicit directory wins; a plain `lepton train` (or a rank Lightning started) is left alone.
    assert not any(o.startswith("hydra.run.dir") for o in launcher_overrides(["hydra.run.dir=/x"], torchrun))
    assert launcher_overrides([], {}) == []
    assert launcher_overrides([], {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "1"}) == []


def test_effective_batch_and_lr_are_stated():
    assert describe_scale(64, 2, 0.01, "none") == (
        "per-rank batch 64 × 2 ranks = 128 images per step per domain; lr 0.01 (lr_scaling=none)")
    assert describe_scale(64, 4, 0.01, "linear", domains=1) == (
        "per-rank batch 64 × 4 ranks = 256 images per step; lr 0.04 (lr_scaling=linear: 0.01 × 4)")


@pytest.mark.parametrize(("scaling", "expected"), [("none", 0.01), ("linear", 0.02)])
def test_linear_lr_scaling_multiplies_the_lr_by_the_world_size(scaling, expected):
    from lepton_cli.methods.source_only import SourceOnly
    from lepton_cli.models.backbones import SmallCNN

    method = SourceOnly(SmallCNN(), num_classes=3, lr=0.01, lr_scaling=scaling)
    method._trainer = SimpleNamespace(world_size=2)
    optimizer = method.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([expected] * len(optimizer.param_groups))


def test_evaluation_sampler_gives_each_image_to_exactly_one_rank():
    dataset = list(range(101))
    shards = [list(eval_sampler(dataset, SimpleNamespace(world_size=2, global_rank=rank))) for rank in (0, 1)]
    assert sorted(shards[0] + shards[1]) == dataset  # no image repeated, none left out
    assert eval_sampler(dataset, SimpleNamespace(world_size=1, global_rank=0)) is None


# ---- 2-process runs -----------------------------------------------------------------------------
PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {repo!r})
    import pytorch_lightning as pl
    import torch
    import torch.distributed as dist
    from hydra import compose, initialize_config_dir
    from lepton_cli.config import conf_dir, rewrite_overrides
    from lepton_cli.builders.data import build_datamodule

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=rewrite_overrides({overrides!r}))
    data = build_datamodule(cfg)
    data.setup()
    for key in ("source_train", "target_train"):  # label = index, to see which images each rank got
        images, _ = data.splits[key]
        data.splits[key] = (images, torch.arange(len(images)))

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append({{domain: labels.tolist() for domain, (_, labels) in batch.items()}})
            return self.weight.sum() * 0

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    probe = Probe()
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(probe, datamodule=data)
    seen = [None, None]
    dist.all_gather_object(seen, probe.seen)
    if trainer.is_global_zero:
        open(sys.argv[1], "w").write(json.dumps(seen))
""")


@pytest.mark.slow
def test_each_step_shards_source_and_target_across_ranks(tmp_path):
    batch, steps = 8, 4  # 32 images per domain per epoch, fewer than either training set holds
    overrides = [*TINY, "method=source_only", "data.batch_size=8", "data.steps_per_epoch=4"]
    overrides = [*overrides, "method=dann"] if _has_method("dann") else overrides
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(repo=str(REPO), overrides=overrides))
    out = tmp_path / "seen.json"
    result = subprocess.run([sys.executable, str(script), str(out)], check=False, capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = json.loads(out.read_text())
    assert len(rank0) == len(rank1) == steps // 2  # the epoch's batches are split between the ranks
    domains = rank0[0].keys()
    assert "source" in domains
    for step0, step1 in zip(rank0, rank1, strict=True):
        for domain in domains:
            union = step0[domain] + step1[domain]
            assert len(union) == 2 * batch and len(set(union)) == 2 * batch  # no image on both ranks
    for domain in domains:  # nor twice in the epoch
        epoch = [i for rank in (rank0, rank1) for step in rank for i in step[domain]]
        assert len(set(epoch)) == len(epoch) == batch * steps


def _has_method(name: str) -> bool:
    return importlib.util.find_spec(f"lepton_cli.methods.{name}") is not None


def evaluate_in_one_process(run_dir: Path) -> dict:
    """Test the run's `checkpoints/last.ckpt` on one CPU process, the model and data rebuilt from
    the run's config.yaml."""
    import pytorch_lightning as pl
    import torch
    from omegaconf import OmegaConf

    from lepton_cli.builders.data import build_datamodule
    from lepton_cli.builders.method import build_method

    cfg = OmegaConf.load(run_dir / "config.yaml")
    data = build_datamodule(cfg)
    data.setup()
    method = build_method(cfg, data)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    method.load_state_dict(checkpoint["state_dict"])
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).test(method, datamodule=data, verbose=False)
    return method.test_results


@pytest.mark.slow
@pytest.mark.parametrize("method", ["source_only", "adabn", "dann", "distill"])
def test_ddp_run_writes_one_run_and_its_metrics_equal_one_process_evaluation(tmp_path, method):
    if not _has_method(method):
        pytest.skip(f"lepton_cli/methods/{method}.py is not there yet")
    run_dir = tmp_path / "run"
    result = run_cli("train", *DDP, *DDP_TINY, f"method={method}", *METHOD_EXTRA.get(method, []),
                     "method.lr_scaling=linear", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    domains = "images per step per domain" if method not in ("source_only", "adabn") else "images per step;"
    assert "per-rank batch 16 × 2 ranks = 32 " + domains in output
    assert "lr 0.02 (lr_scaling=linear: 0.01 × 2)" in output

    assert [p.name for p in tmp_path.iterdir() if p.name != "probe.py"] == ["run"]  # one run directory
    assert list(tmp_path.rglob("metrics.json")) == [run_dir / "metrics.json"]
    assert list(tmp_path.rglob(".hydra")) == [run_dir / ".hydra"]  # Hydra's copy from rank 0 only
    metrics = json.loads((run_dir / "metrics.json").read_text())

    single = evaluate_in_one_process(run_dir)
    assert set(single) <= set(metrics)
    for key, value in single.items():
        if key.endswith("/acc"):
            assert metrics[key] == value, key  # each test image counted exactly once
        else:
            assert metrics[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
def test_torchrun_launch_writes_one_run_directory(tmp_path):
    """`torchrun -m lepton_cli train ...`: both ranks compose the config and agree on the directory."""
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                             str(port), "-m", "lepton_cli", "train", *DDP, *DDP_TINY], check=False,
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("torchrun-"), runs
    assert list(tmp_path.rglob("metrics.json")) == [runs[0] / "metrics.json"]
    assert (runs[0] / "train_rank1.log").exists() and (runs[0] / "checkpoints" / "last.ckpt").exists()
