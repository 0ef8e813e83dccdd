"""Lepton: a config-driven runner for cross-domain (domain adaptation) experiments."""

__version__ = "0.1.0"
