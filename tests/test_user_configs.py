"""A user's own config directory (`--config-dir DIR`, `hydra.searchpath=[...]`): a data set and a method
from the user's own module, validated, listed and resumed like Lepton's own options, without touching
the package. The files are the README's example (docs/examples/user_configs/)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lepton_cli.config import rewrite_overrides, searchpath_args, user_config_dirs
from lepton_cli.errors import LeptonError
from lepton_cli.overrides import check_overrides
from lepton_cli.run_dir import check_saved_overrides
from tests.helpers.cli import assert_one_line_error, run_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "user_configs"
MYCONF = EXAMPLE / "myconf"


def test_config_dir_becomes_a_searchpath_after_lepton_tree(tmp_path):
    args = searchpath_args(["method=entropy_min", "--config-dir", str(MYCONF), "--cfg", "job"])
    assert args == ["method=entropy_min", "--cfg", "job", f"hydra.searchpath=['file://{MYCONF}']"]
    assert user_config_dirs(args) == (MYCONF,)
    both = searchpath_args([f"hydra.searchpath=[file://{tmp_path}]", f"--config-dir={MYCONF}"])
    assert user_config_dirs(both) == (tmp_path, MYCONF)
    with pytest.raises(LeptonError, match="--config-dir nowhere: no such directory"):
        searchpath_args(["--config-dir", "nowhere"])
    for empty in (["--config-dir"], ["--config-dir="]):  # not the current directory by accident
        with pytest.raises(LeptonError, match="--config-dir needs a directory"):
            searchpath_args(["method=dann", *empty])
    # A package that does not exist, or a module that is not a package, is no folder of configs.
    for entry in ("pkg://nosuchpkg.conf", "pkg://json.decoder"):
        with pytest.raises(LeptonError, match="is not a directory"):
            user_config_dirs([f"hydra.searchpath=[{entry}]"])


def test_user_options_are_validated_like_lepton_own():
    searchpath = searchpath_args(["--config-dir", str(MYCONF)])
    cfg = check_overrides(rewrite_overrides(["source=noisy_digits", "method=entropy_min", "method.weight=0.5", *searchpath]))
    assert cfg.source._target_ == "my_lepton_ext.NoisyDigits" and cfg.method.weight == 0.5
    assert cfg.method.lr == 0.01  # Lepton's _shared.yaml, found from the user's method file
    with pytest.raises(LeptonError, match="unknown method 'entropy_mni'; choose one of: .*dann.*entropy_min"):
        check_overrides(["method=entropy_mni", *searchpath])
    with pytest.raises(LeptonError, match="method.lr expects a number"):
        check_overrides(["method=entropy_min", "method.lr=abc", *searchpath])
    with pytest.raises(LeptonError, match="unknown method 'entropy_min'"):
        check_overrides(["method=entropy_min"])  # without the directory it is not an option


def test_a_user_file_cannot_shadow_lepton_option(tmp_path):
    shutil.copytree(MYCONF, tmp_path / "conf")
    (tmp_path / "conf" / "method" / "dann.yaml").write_text("# mine\n_target_: x.Y\nname: dann\n")
    with pytest.raises(LeptonError, match="method/dann.yaml has the name of another method option, 'dann'"):
        check_overrides(["method=dann", *searchpath_args(["--config-dir", str(tmp_path / "conf")])])


def test_resume_takes_user_options_only_with_the_directory_given_again():
    saved = ["dataset@source=noisy_digits", "method=entropy_min", "method.weight=0.2"]
    check_saved_overrides(saved, "run/.hydra/overrides.yaml", searchpath_args(["--config-dir", str(MYCONF)]))
    with pytest.raises(LeptonError, match="is not one of Lepton's options"):
        check_saved_overrides(saved, "run/.hydra/overrides.yaml")


def test_list_shows_user_options_beside_lepton_own():
    result = run_cli("list", "method", "--config-dir", str(MYCONF))
    assert result.returncode == 0, result.stderr
    assert "entropy_min" in result.stdout and "my own method" in result.stdout and "dann" in result.stdout
    assert "noisy_digits" in run_cli("list", f"hydra.searchpath=[file://{MYCONF}]").stdout
    assert "noisy_digits" not in run_cli("list", "source").stdout


@pytest.mark.slow
def test_train_with_a_user_data_set_and_method(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("train", "--config-dir", str(MYCONF), "source=noisy_digits", "method=entropy_min",
                     "trainer=debug", f"hydra.run.dir={run_dir}", cwd=tmp_path, env={"PYTHONPATH": str(EXAMPLE)})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["source"], metrics["method"]) == ("noisy_digits", "entropy_min")
    assert_one_line_error(run_cli("train", "--config-dir", str(MYCONF), "method=entropy_mni", cwd=tmp_path),
                          "unknown method 'entropy_mni'", "entropy_min")


def test_a_new_user_group_is_listed_and_checked(tmp_path, capsys):
    from lepton_cli.cli import main

    (tmp_path / "extras").mkdir()
    # A new group's files set keys of Lepton's config (its root is typed), like an experiment preset.
    (tmp_path / "extras" / "one.yaml").write_text("# @package _global_\n# my extra settings\ndata:\n  batch_size: 32\n")
    assert main(["list", "--config-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\nextras=\n" in out and "my extra settings" in out
    searchpath = searchpath_args(["--config-dir", str(tmp_path)])
    assert check_overrides(["+extras=one", *searchpath]).data.batch_size == 32
    with pytest.raises(LeptonError, match="unknown extras 'two'; choose one of: one"):
        check_overrides(["+extras=two", *searchpath])
