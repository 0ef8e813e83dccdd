"""The README's cheap commands, run as written, so the README cannot drift from what Lepton does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from lepton_cli.config import group_options
from tests.helpers.cli import run_cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
CHEAP = ("lepton --help", "lepton list", "lepton list method", "lepton train --cfg job", "lepton train trainer=debug")


def readme_commands() -> list[str]:
    """`lepton ...` lines of the README's indented code blocks, comments cut off."""
    lines = re.findall(r"^ {4}(lepton [^\n]*)$", README, flags=re.MULTILINE)
    return [line.split("#", 1)[0].strip() for line in lines]


def test_readme_shows_the_cheap_commands():
    assert set(CHEAP) <= set(readme_commands())


def test_readme_help_and_list_commands_run_as_written():
    outputs = {}
    for command in [c for c in readme_commands() if c in CHEAP[:3]]:
        result = run_cli(*command.split()[1:])
        assert result.returncode == 0 and not result.stderr.strip(), (command, result.stderr)
        outputs[command] = result.stdout
    assert outputs["lepton --help"].startswith("usage: lepton COMMAND")
    for group in ("method=", "trainer=", "logger=", "sweep="):
        assert f"\n{group}" in f"\n{outputs['lepton list']}"
    assert "trainer=" not in outputs["lepton list method"]
    # Each option's line is its description, not a file's format notes (the sweep presets had those first).
    for name, description in group_options("sweep").items():
        line = rf"^ +{re.escape(name)} +{re.escape(description)}$"
        assert description and re.search(line, outputs["lepton list"], flags=re.MULTILINE), name
        assert not description.startswith("Sweep preset format")


def test_readme_cfg_job_prints_the_config_without_running(tmp_path):
    result = run_cli("train", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["method"]["name"] == "source_only" and config["logger"]["csv"] is True
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_readme_debug_run_and_its_run_directory(tmp_path):
    """`lepton train trainer=debug`: the run directory printed first, the loss in the progress bar, no
    Lightning tip or `_pytree` warning, no t-SNE, and the files the README's run-directory section lists."""
    result = run_cli("train", "trainer=debug", "hydra.run.dir=runs/debug", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    first = next(line for line in output.splitlines() if line.strip())
    assert "run directory:" in first and first.rstrip().endswith(str(tmp_path / "runs" / "debug")), first
    assert "train/loss" in output
    assert "Tip" not in output and "_pytree" not in output and "litlogger" not in output
    run_dir = tmp_path / "runs" / "debug"
    section = README.split("### A run directory", 1)[1].split("\n### ", 1)[0]
    for name in ("config.yaml", "metrics.json", "train.log", ".hydra/", "report.md"):
        assert f"`{name}" in section, name
        assert (run_dir / name.rstrip("/")).exists(), name
    assert "`eval.json`" in section and "lepton eval" in section
    assert (run_dir / "report" / "confusion_matrix.png").is_file() and not (run_dir / "report" / "tsne.png").exists()
