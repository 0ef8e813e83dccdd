"""The bad-input catalogue: every mistake a user can make gets ONE line on stderr that says what
is wrong and how to fix it, exit code 2, no traceback.

Most cases run `lepton_cli.train.main` / `lepton_cli.cli.main` in-process (the same code path as
the command, without paying for a Python start per case); a few run the real command in a
subprocess to show the whole chain holds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY
from tests.helpers.cli import assert_one_line_error, run_cli

FAST = [*TINY, "report=false", "trainer.fast_dev_run=true"]
NO_SOURCE_SIZES = [o for o in FAST if not o.startswith("source.")]  # for sources other than synth_digits


def one_line_error(capsys, monkeypatch, *args: str, command: str = "train") -> str:
    """Run `lepton COMMAND ARGS` in-process; assert exit code 2, no traceback, one stderr line."""
    from lepton_cli import cli, train

    monkeypatch.delenv("LEPTON_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    capsys.readouterr()
    if command == "train":
        monkeypatch.setattr(sys, "argv", ["lepton_cli.train", *args])
        with pytest.raises(SystemExit) as exit_info:
            train.main()
        code = exit_info.value.code
    else:
        code = cli.main([command, *args])
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err[-2000:])
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lepton: error: ")
    return lines[0]


def write_png(path: Path, color: int = 128, size: int = 20) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), color, dtype=np.uint8)).save(path)


# ---- before anything runs: groups, keys, types, commands ---------------------------------------------
@pytest.mark.parametrize("group", ["source", "target", "student", "teacher", "method", "trainer"])
def test_unknown_group_option_lists_the_choices(capsys, monkeypatch, group):
    from lepton_cli.config import group_options

    line = one_line_error(capsys, monkeypatch, f"{group}=nope")
    assert f"unknown {group} 'nope'" in line and f"lepton list {group}" in line
    assert all(option in line for option in list(group_options(group))[:3])


@pytest.mark.parametrize(("override", "fragments"), [
    ("method.lrr=0.1", ("unknown key", "method.lrr", "+method.lrr")),
    ("method.lr=abc", ("method.lr expects a number", "abc")),
    ("data.batch_size=big", ("data.batch_size expects a number", "big")),
    ("trainer.fast_dev_run=maybe", ("trainer.fast_dev_run expects true or false", "maybe")),
])
def test_unknown_key_and_wrong_type(capsys, monkeypatch, override, fragments):
    line = one_line_error(capsys, monkeypatch, override)
    assert all(fragment in line for fragment in fragments), line


def test_unknown_command_and_unknown_list_group(capsys, monkeypatch):
    assert "unknown command 'trian'" in one_line_error(capsys, monkeypatch, command="trian")
    line = one_line_error(capsys, monkeypatch, "nope", command="list")
    assert "unknown group 'nope'" in line and "method" in line


def test_subprocess_one_line_error_end_to_end():
    assert_one_line_error(run_cli("train", "student=nope"), "unknown student 'nope'", "small_cnn")


# ---- values out of range (each rule declared beside its field in lepton_cli/schema/) ----------------
@pytest.mark.parametrize(("override", "fragment"), [
    ("method.lr=-0.1", "method.lr must be > 0, got -0.1"),
    ("data.batch_size=0", "data.batch_size must be > 0, got 0"),
    ("data.batch_size=-4", "data.batch_size must be > 0, got -4"),
    ("data.steps_per_epoch=0", "data.steps_per_epoch must be > 0, got 0"),
    ("method.optimizer.momentum=1.5", "method.optimizer.momentum must be in [0, 1], got 1.5"),
    ("data.channels=2", "data.channels must be 1 (grey) or 3 (RGB), got 2"),
    ("trainer.max_epochs=0", "trainer.max_epochs must be at least 1"),
])
def test_out_of_range_values(capsys, monkeypatch, tmp_path, override, fragment):
    line = one_line_error(capsys, monkeypatch, *FAST, override, f"hydra.run.dir={tmp_path / 'run'}")
    assert fragment in line, line
    assert "=" in line.split(fragment, 1)[1] or "set" in line  # says how to set it


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_pseudo_label_threshold_outside_zero_one(capsys, monkeypatch, tmp_path, value):
    from lepton_cli.config import group_options

    if "pseudo_label" not in group_options("method"):
        pytest.skip("method=pseudo_label not in this tree")
    line = one_line_error(capsys, monkeypatch, *FAST, "method=pseudo_label", f"method.threshold={value}",
                          f"hydra.run.dir={tmp_path / 'run'}")
    assert f"method.threshold must be in [0, 1], got {value}" in line


def test_gpu_trainer_without_gpu(capsys, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = one_line_error(capsys, monkeypatch, *FAST, "trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}")
    assert "no CUDA GPU" in line and "trainer=cpu" in line


def test_image_size_too_small_for_the_backbone(capsys, monkeypatch, tmp_path):
    # Raised inside SmallCNN's constructor, i.e. inside Hydra's instantiate: unwrapped to one line.
    line = one_line_error(capsys, monkeypatch, *FAST, "data.image_size=8", f"hydra.run.dir={tmp_path / 'run'}")
    assert "small_cnn needs images of at least 16 px" in line and "data.image_size=8" in line


# ---- refused before Hydra writes anything (the security issue's cases) --------------------------------
@pytest.mark.parametrize(("override", "fragments"), [
    ("data.image_size=big", ("data.image_size expects a whole number or auto, got 'big'",)),
    ("seed=-1", ("seed must be in [0, 2**32 - 1], got -1", "set seed=")),
    ("data.root=[a,b]", ("data.root expects a string, got a list [a,b]", "e.g. data.root=")),
    ("data.root={a:1}", ("data.root expects a string, got a dict",)),
    ("data.root=${oc.env:LEPTON_TEST_UNSET}", ("data.root=${oc.env:LEPTON_TEST_UNSET} cannot be resolved",
                                              "'LEPTON_TEST_UNSET' not found", "${oc.env:NAME,DEFAULT}")),
    ("trainer.max_epochs=-1", ("trainer.max_epochs=-1", "never stop", "set trainer.max_steps=N")),
    ("data.batch_size=1000000", ("data.batch_size must be at most 65536, got 1000000",)),
    ("data.eval_batch_size=70000", ("data.eval_batch_size must be at most 65536, got 70000",)),
    ("data.eval_batch_size=0", ("data.eval_batch_size must be > 0, got 0", "set data.eval_batch_size=")),
    ("data.target_val_fraction=1.0", ("data.target_val_fraction must be in [0, 1), got 1.0",)),
    ("data.image_size=100000", ("data.image_size must be at most 2048, got 100000", "held in memory")),
    ("run_name=" + "x" * 300, ("bytes, more than the 255 a file system takes", "shorten run_name")),
])
def test_refused_before_anything_is_written(capsys, monkeypatch, tmp_path, override, fragments):
    monkeypatch.chdir(tmp_path)  # the default run directory, runs/<date>_<name>, would be made here
    monkeypatch.delenv("LEPTON_TEST_UNSET", raising=False)
    line = one_line_error(capsys, monkeypatch, *FAST, override)
    assert all(fragment in line for fragment in fragments), line
    assert list(tmp_path.iterdir()) == []  # no runs/, no .hydra/


def test_max_epochs_minus_one_with_max_steps_is_accepted():
    from lepton_cli.overrides import check_overrides

    cfg = check_overrides([*FAST, "trainer.max_epochs=-1", "trainer.max_steps=3"])
    assert cfg.trainer.max_steps == 3


def test_file_system_root_as_run_dir(capsys, monkeypatch):
    line = one_line_error(capsys, monkeypatch, *FAST, "hydra.run.dir=/")
    assert "hydra.run.dir=/" in line
    assert not Path("/.hydra").exists()


def test_subprocess_refuses_an_unset_environment_variable(tmp_path):
    assert "LEPTON_TEST_UNSET" not in os.environ
    assert_one_line_error(run_cli("train", "data.cache_dir=${oc.env:LEPTON_TEST_UNSET}", cwd=tmp_path),
                          "data.cache_dir=${oc.env:LEPTON_TEST_UNSET} cannot be resolved", "not found")
    assert list(tmp_path.iterdir()) == []


# ---- run directories ---------------------------------------------------------------------------------
def test_unwritable_run_dir(capsys, monkeypatch, tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    line = one_line_error(capsys, monkeypatch, f"hydra.run.dir={tmp_path / 'afile' / 'run'}")
    assert "cannot create the run directory" in line and "is a file" in line and "hydra.run.dir" in line


def test_run_dir_with_a_finished_run(capsys, monkeypatch, tmp_path):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "metrics.json").write_text("{}")
    line = one_line_error(capsys, monkeypatch, f"hydra.run.dir={tmp_path / 'done'}")
    assert "already holds a finished run" in line and "nothing was overwritten" in line
    assert (tmp_path / "done" / "metrics.json").read_text() == "{}"
    assert not (tmp_path / "done" / ".hydra").exists()  # refused before Hydra wrote anything


def test_run_dir_with_an_interrupted_run_needs_resume(capsys, monkeypatch, tmp_path):
    (tmp_path / "killed" / "checkpoints").mkdir(parents=True)
    (tmp_path / "killed" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    line = one_line_error(capsys, monkeypatch, f"hydra.run.dir={tmp_path / 'killed'}")
    assert "interrupted run" in line and f"lepton train resume={tmp_path / 'killed'}" in line


def test_resume_of_a_missing_or_checkpointless_dir(capsys, monkeypatch, tmp_path):
    assert "no such run directory" in one_line_error(capsys, monkeypatch, f"resume={tmp_path / 'nope'}")
    (tmp_path / "early").mkdir()
    line = one_line_error(capsys, monkeypatch, f"resume={tmp_path / 'early'}")
    assert "no checkpoints/last.ckpt" in line and "without resume=" in line


# ---- checkpoints ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["student", "teacher"])
def test_missing_checkpoint(capsys, monkeypatch, tmp_path, role):
    line = one_line_error(capsys, monkeypatch, *FAST, f"{role}.checkpoint=/nope.ckpt", f"hydra.run.dir={tmp_path / 'run'}")
    assert f"{role}.checkpoint /nope.ckpt does not exist" in line and "last.ckpt" in line


def test_checkpoint_of_another_architecture(capsys, monkeypatch, tmp_path):
    import torch

    from lepton_cli.models.backbones import SmallCNN

    other = tmp_path / "rgb32.ckpt"  # a SmallCNN for 3-channel 32 px images: other shapes
    torch.save({"state_dict": {f"model.backbone.{k}": v for k, v in SmallCNN(3, 32).state_dict().items()}}, other)
    line = one_line_error(capsys, monkeypatch, *FAST, f"student.checkpoint={other}", f"hydra.run.dir={tmp_path / 'run'}")
    assert "does not fit student=SmallCNN" in line and "set student=" in line


def test_file_that_is_not_a_checkpoint(capsys, monkeypatch, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00garbage" * 10)
    line = one_line_error(capsys, monkeypatch, *FAST, f"teacher.checkpoint={junk}", f"hydra.run.dir={tmp_path / 'run'}")
    assert "is not a readable checkpoint" in line


# ---- data ------------------------------------------------------------------------------------------------
def imagefolder_args(path: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [*NO_SOURCE_SIZES, "source=imagefolder", f"source.path={path}", "source.image_size=28", *extra,
            f"hydra.run.dir={tmp_path / 'run'}"]


def test_empty_data_folder(capsys, monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_line_error(capsys, monkeypatch, *imagefolder_args(tmp_path / "empty", tmp_path))
    assert "no images found" in line and "one sub-folder per class" in line


def test_data_folder_without_images(capsys, monkeypatch, tmp_path):
    (tmp_path / "docs" / "cat").mkdir(parents=True)
    (tmp_path / "docs" / "cat" / "notes.txt").write_text("hello")
    line = one_line_error(capsys, monkeypatch, *imagefolder_args(tmp_path / "docs", tmp_path))
    assert "no images found" in line


def test_missing_data_folder(capsys, monkeypatch, tmp_path):
    line = one_line_error(capsys, monkeypatch, *imagefolder_args(tmp_path / "absent", tmp_path))
    assert "does not exist" in line


def test_corrupt_image_with_on_corrupt_error(capsys, monkeypatch, tmp_path):
    # Two classes: with one, the folder's layout is the first mistake (files are listed before decoding).
    write_png(tmp_path / "imgs" / "2" / "good.png")
    write_png(tmp_path / "imgs" / "3" / "good.png")
    (tmp_path / "imgs" / "3" / "broken.png").write_bytes(b"\x89PNG not really")
    line = one_line_error(capsys, monkeypatch, *imagefolder_args(tmp_path / "imgs", tmp_path, "source.on_corrupt=error"))
    assert "cannot decode image" in line and "broken.png" in line and "on_corrupt='skip'" in line


def test_corrupt_images_are_skipped_with_one_warning_and_a_count(tmp_path):
    from lepton_cli.data.domains import ImageFolderDomain

    write_png(tmp_path / "imgs" / "3" / "good.png")
    write_png(tmp_path / "imgs" / "5" / "good.png")
    for name in ("a.png", "b.jpg"):
        (tmp_path / "imgs" / "3" / name).write_bytes(b"broken")
    with pytest.warns(UserWarning, match=r"skipped 2 corrupt"):
        arrays = ImageFolderDomain(path=str(tmp_path / "imgs"), image_size=16, cache=False).load("train", tmp_path)
    assert len(arrays) == 2 and arrays.classes == ["3", "5"]


def test_source_and_target_with_no_class_in_common(capsys, monkeypatch, tmp_path):
    for name in ("cat", "dog"):
        write_png(tmp_path / "pets" / name / "0.png")
    line = one_line_error(capsys, monkeypatch, *imagefolder_args(tmp_path / "pets", tmp_path))
    assert "no class in common" in line and "rename_classes" in line


def test_missing_data_directory_for_a_file_data_set(capsys, monkeypatch, tmp_path):
    line = one_line_error(capsys, monkeypatch, *NO_SOURCE_SIZES, "source=mnist", "data.root=/nonexistent",
                          f"hydra.run.dir={tmp_path / 'run'}")
    assert "mnist: missing" in line and "/nonexistent/MNIST/raw" in line and "data.download=true" in line


# ---- lepton report and lepton eval ------------------------------------------------------------------
@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe binary"])
def test_report_on_a_damaged_metrics_file(capsys, monkeypatch, tmp_path, content):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(content, errors="surrogateescape")
    line = one_line_error(capsys, monkeypatch, str(run_dir), command="report")
    assert "metrics.json" in line and "lepton train" in line
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.json"]  # nothing written


@pytest.mark.parametrize(("args", "expected"), [(["a", "b"], "takes one directory"), (["/no/such/dir"], "is not a directory")])
def test_report_arguments(capsys, monkeypatch, args, expected):
    assert expected in one_line_error(capsys, monkeypatch, *args, command="report")


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    from lepton_cli.train import run
    from tests.conftest import compose_config

    run_dir = tmp_path_factory.mktemp("bad_eval") / "run"
    run(compose_config([*TINY, "report=false"], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_eval_with_an_unusable_eval_batch_size(capsys, monkeypatch, trained_checkpoint, tmp_path, value):
    line = one_line_error(capsys, monkeypatch, f"checkpoint={trained_checkpoint}", f"data.eval_batch_size={value}",
                          f"hydra.run.dir={tmp_path / 'out'}", command="eval")
    assert "eval_batch_size" in line
    assert not (tmp_path / "out").exists()


def test_eval_into_a_file_instead_of_a_directory(capsys, monkeypatch, trained_checkpoint, tmp_path):
    (tmp_path / "afile").write_text("x")
    line = one_line_error(capsys, monkeypatch, f"checkpoint={trained_checkpoint}", f"hydra.run.dir={tmp_path / 'afile'}",
                          command="eval")
    assert "afile" in line and (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("what", ["directory", "missing", "garbage"])
def test_eval_of_something_that_is_not_a_checkpoint(capsys, monkeypatch, tmp_path, what):
    path = {"directory": tmp_path, "missing": tmp_path / "none.ckpt", "garbage": tmp_path / "g.ckpt"}[what]
    if what == "garbage":
        path.write_bytes(b"\x00not a zip file at all")
    line = one_line_error(capsys, monkeypatch, f"checkpoint={path}", command="eval")
    assert "checkpoint" in line


@pytest.mark.parametrize("monitor", ["target/acc", "oracle/target/acc", "selection/target/f1_macro"])
def test_a_callback_may_not_choose_by_target_labels(capsys, monkeypatch, tmp_path, monitor):
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, monkeypatch, *FAST, f"callbacks.checkpoint.monitor={monitor}")
    assert "would choose by target test labels" in line and "selection=oracle" in line
    assert list(tmp_path.iterdir()) == []


def test_report_of_a_run_whose_report_folder_points_elsewhere(capsys, monkeypatch, tmp_path):
    run_dir, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run_dir.mkdir()
    elsewhere.mkdir()
    (run_dir / "metrics.json").write_text('{"target/acc": 0.5}')
    (run_dir / "report").symlink_to(elsewhere)
    line = one_line_error(capsys, monkeypatch, str(run_dir), command="report")
    assert "symbolic link" in line and list(elsewhere.iterdir()) == []


def test_report_of_a_metrics_file_with_a_damaged_history(capsys, monkeypatch, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"target/acc": 0.5, "selection/history": [1, 2]}')
    assert "selection/history" in one_line_error(capsys, monkeypatch, str(run_dir), command="report")
