"""Packaging: the built wheel carries the config tree and works installed outside the checkout; the
metadata names the distribution, the licence and one version; no hint sends users to another package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import lepton_cli

REPO = Path(__file__).resolve().parents[1]


def test_metadata_names_the_distribution_licence_and_one_version():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == lepton_cli.DISTRIBUTION != "lepton"  # "lepton" on the index is another project
    assert project["scripts"] == {"lepton": "lepton_cli.cli:entry_point"}
    assert "version" not in project and project["dynamic"] == ["version"]
    assert project["license"] == "MIT" and "MIT License" in (REPO / "LICENSE").read_text()
    assert {"tensorboard", "wandb", "mlflow", "search", "cluster"} <= set(project["optional-dependencies"])


def test_no_install_hint_names_the_other_package():
    """`pip install lepton[...]` would install the unrelated `lepton` from the index."""
    texts = [REPO / "README.md", *(REPO / "lepton_cli").rglob("*.py"), *(REPO / "docs").rglob("*.md")]
    wrong = [str(path.relative_to(REPO)) for path in texts if re.search(r"pip install '?lepton\[", path.read_text())]
    assert not wrong


def _build_wheel(out: Path) -> Path:
    """The wheel of a copy of the sources (the build writes build/ and *.egg-info beside them)."""
    source = out / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "LICENSE", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("lepton_cli", "conf"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out / "dist"), str(source)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (out / "dist").glob("lepton_transfer-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_outside_the_checkout_and_runs(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    conf = sorted(p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml"))
    assert [n for n in conf if f"lepton_cli/conf/{n}" not in names] == []
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    # A fresh venv that sees this environment's torch, Lightning, Hydra... as a plain path: the
    # checkout's editable install (a .pth finder in that site-packages) is not processed there.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "LEPTON_DEBUG")}
    lepton = str(venv / "bin" / "lepton")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([lepton, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)

    where = subprocess.run([str(python), "-c", "import lepton_cli; print(lepton_cli.__file__)"], cwd=cwd, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    listing = run("list")
    assert listing.returncode == 0, listing.stderr
    assert "synth_digits" in listing.stdout and "source_only" in listing.stdout
    assert run("--version").stdout.strip() == f"lepton {lepton_cli.__version__}"
    trained = run("train", "trainer=debug", "hydra.run.dir=runs/debug")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (cwd / "runs" / "debug" / "metrics.json").is_file()
