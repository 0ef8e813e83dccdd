"""Lepton: a config-driven runner for cross-domain (domain adaptation) experiments."""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (dynamic version), `lepton --version` prints it

# The name on the package index ("lepton" there is an unrelated project): what `pip install` hints say.
DISTRIBUTION = "lepton-transfer"


def install_hint(extra: str) -> str:
    """The pip command that brings an optional extra, e.g. `pip install 'lepton-transfer[wandb]'`."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
