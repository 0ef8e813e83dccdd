"""Pictures and report.md at the end of a run, `lepton report DIR` for runs and sweeps."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from lepton_cli.report import main as report_main
from lepton_cli.reporting import plots
from lepton_cli.reporting.markdown import write_sweep_report
from tests.conftest import TINY, compose_config

PNGS = (plots.CURVES, plots.CONFUSION, plots.TSNE)


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    from lepton_cli.train import run

    run_dir = tmp_path_factory.mktemp("report") / "run"
    metrics = run(compose_config([*TINY, "trainer.max_epochs=2", "data.steps_per_epoch=2", "report=true"], run_dir))
    return metrics, run_dir


def _assert_valid_pngs(directory: Path) -> None:
    for name in PNGS:
        with Image.open(directory / name) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
            image.verify()


def _links(markdown: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown.read_text())


def _assert_links_resolve(markdown: Path) -> list[str]:
    links = _links(markdown)
    assert links
    for link in links:
        assert not Path(link).is_absolute() and (markdown.parent / link).exists(), link
    return links


@pytest.mark.slow  # a 2-epoch run plus t-SNE: ~10 s on an idle 2-core CPU
def test_every_run_ends_with_valid_pictures(reported_run):
    _, run_dir = reported_run
    _assert_valid_pngs(run_dir / "report")


@pytest.mark.slow  # a 2-epoch run plus t-SNE: ~10 s on an idle 2-core CPU
def test_run_report_embeds_pictures_metrics_selection_and_config(reported_run):
    metrics, run_dir = reported_run
    links = _assert_links_resolve(run_dir / "report.md")
    assert {f"report/{name}" for name in PNGS} <= set(links)
    text = (run_dir / "report.md").read_text()
    assert f"{100 * metrics['target/acc']:.2f}" in text
    assert "selected by source_val" in text and "oracle (uses target labels)" in text
    assert "```yaml" in text and "selection:" in text  # the resolved config


@pytest.mark.slow  # a 2-epoch run plus t-SNE: ~10 s on an idle 2-core CPU
def test_lepton_report_regenerates_a_run_from_its_files(reported_run):
    _, run_dir = reported_run
    for name in PNGS:
        (run_dir / "report" / name).unlink()
    (run_dir / "report.md").unlink()
    assert report_main([str(run_dir)]) == 0
    _assert_valid_pngs(run_dir / "report")
    _assert_links_resolve(run_dir / "report.md")


@pytest.mark.slow  # a 2-epoch run plus t-SNE: ~10 s on an idle 2-core CPU
def test_sweep_report_has_the_leaderboard_and_links_to_each_runs_pictures(reported_run, tmp_path):
    _, run_dir = reported_run
    sweep = tmp_path / "sweep"
    for name in ("0", "1"):
        shutil.copytree(run_dir, sweep / name, ignore=shutil.ignore_patterns("checkpoints"))
    (sweep / "leaderboard.md").write_text("# Sweep leaderboard\n\n| method | target acc % |\n| --- | --- |\n| source_only | 10.00 |\n")
    path = write_sweep_report(sweep)
    links = _assert_links_resolve(path)
    assert {"0/report/tsne.png", "1/report/confusion_matrix.png", "0/report.md", "leaderboard.md"} <= set(links)
    assert "| source_only | 10.00 |" in path.read_text()


def test_report_of_a_directory_without_runs_is_a_one_line_error(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no run directories with metrics.json" in capsys.readouterr().err
