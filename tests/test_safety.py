"""Nothing lost or half-written, NaN losses, files that would run code, and no network."""

from __future__ import annotations

import errno
import pathlib
import socket

import pytest
import torch

from lepton_cli import io as lepton_io
from lepton_cli.checkpoints import atomic_checkpoint_io
from lepton_cli.errors import LeptonError

NO_REPORT = ["report=false"]


def fail_writes_to(monkeypatch, predicate) -> None:
    """Disk full for the files `predicate` picks: half the bytes land in the temp file, then ENOSPC."""
    real = lepton_io._write_all

    def write(handle, data, path):
        if predicate(path):
            handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(handle, data, path)

    monkeypatch.setattr(lepton_io, "_write_all", write)


def test_disk_full_on_checkpoint_is_one_error_and_leaves_no_half_file(run_experiment, monkeypatch, tmp_path):
    fail_writes_to(monkeypatch, lambda path: path.suffix == ".ckpt")
    with pytest.raises(LeptonError, match=r"could not write .*checkpoints/.*\.ckpt: no space left on the device.*resume="):
        run_experiment(*NO_REPORT, run_dir=tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").rglob("*") if p.is_file() and p.suffix in (".ckpt", ".tmp")] == []
    assert not (tmp_path / "full" / "metrics.json").exists()


def test_disk_full_leaves_nothing_behind(run_experiment, monkeypatch, tmp_path):
    fail_writes_to(monkeypatch, lambda path: path.name == "metrics.json")
    with pytest.raises(LeptonError, match="could not write .*metrics.json: no space left"):
        run_experiment(*NO_REPORT, run_dir=tmp_path / "full")
    files = sorted(p.name for p in (tmp_path / "full").rglob("*") if p.is_file())
    assert "metrics.json" not in files and not any(name.endswith(".tmp") for name in files)
    assert "last.ckpt" in files  # the checkpoint written before is whole and usable
    assert "state_dict" in torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)


def test_write_atomically_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    lepton_io.write_atomically(target, '{"old": 1}')
    fail_writes_to(monkeypatch, lambda path: True)
    with pytest.raises(LeptonError, match="no space left"):
        lepton_io.write_atomically(target, '{"new": 2}' * 1000)
    assert target.read_text() == '{"old": 1}' and list(tmp_path.iterdir()) == [target]


def test_write_into_a_path_under_a_file_is_one_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LeptonError, match="a part of the path is a file"):
        lepton_io.write_atomically(tmp_path / "afile" / "run" / "metrics.json", "{}")


def test_nan_loss_stops_with_step_term_and_fix_keeping_the_last_good_checkpoint(run_experiment, monkeypatch, tmp_path):
    from lepton_cli.methods.source_only import SourceOnly

    real = SourceOnly.source_loss

    def loss_nan_from_step_3(self, logits, labels):
        loss = real(self, logits, labels)
        return loss * float("nan") if self.global_step >= 2 else loss  # the third optimiser step

    monkeypatch.setattr(SourceOnly, "source_loss", loss_nan_from_step_3)
    with pytest.raises(LeptonError) as error:
        run_experiment(*NO_REPORT, "data.steps_per_epoch=6", "callbacks.step_checkpoint.every_n_train_steps=1",
                       run_dir=tmp_path / "nan")
    message = str(error.value)
    assert "train/loss became NaN or inf at step 3" in message and "lower method.lr" in message.lower()
    saved = torch.load(tmp_path / "nan" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2  # the last good step, not a checkpoint with NaN weights
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    assert "last good checkpoint" in message


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_a_pickle_that_runs_code_is_refused_and_never_executed(tmp_path, role, capsys, monkeypatch):
    from tests.test_bad_input import FAST, one_line_error

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.head.weight": Payload()}}, evil)
    line = one_line_error(capsys, monkeypatch, *FAST, f"{role}.checkpoint={evil}", f"hydra.run.dir={tmp_path / 'run'}")
    assert f"refused to load {role}.checkpoint {evil}" in line and "untrusted" in line
    assert not marker.exists()


def test_resume_checkpoints_are_loaded_without_pickled_code(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    torch.save({"state_dict": {}, "loops": Payload()}, tmp_path / "last.ckpt")
    with pytest.raises(LeptonError, match="refused"):
        atomic_checkpoint_io().load_checkpoint(tmp_path / "last.ckpt")
    assert not marker.exists()


def test_truncated_data_cache_is_not_trusted(tmp_path):
    from lepton_cli.data.domains import SynthDigits

    domain = SynthDigits(train_size=50, test_size=20)
    first = domain.load("test", tmp_path, cache_dir=tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:200])  # a run killed mid-write by another tool
    with pytest.warns(UserWarning, match="unreadable.*decoding the data again"):
        again = domain.load("test", tmp_path, cache_dir=tmp_path / "cache")
    assert (again.images == first.images).all() and (again.labels == first.labels).all()
    assert domain.load("test", tmp_path, cache_dir=tmp_path / "cache").images.shape == first.images.shape  # rewritten


def test_checkpoints_are_written_through_a_temp_file(tmp_path, monkeypatch):
    renames = []
    real = lepton_io.os.replace
    monkeypatch.setattr(lepton_io.os, "replace", lambda src, dst: (renames.append((src, dst)), real(src, dst)))
    atomic_checkpoint_io().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, tmp_path / "last.ckpt")
    (temp_name, final), = renames
    assert pathlib.Path(temp_name).name.endswith(".tmp") and pathlib.Path(temp_name).parent == tmp_path
    assert final == tmp_path / "last.ckpt"
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]["w"].sum() == 2


def test_default_experiment_runs_without_network(run_experiment, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    metrics, run_dir = run_experiment(*NO_REPORT, "trainer.fast_dev_run=true")
    assert 0.0 <= metrics["target/acc"] <= 1.0 and (run_dir / "metrics.json").is_file()
