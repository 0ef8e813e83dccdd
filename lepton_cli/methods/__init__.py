"""Adaptation methods, each a LightningModule over `AdaptationMethod`."""

from lepton_cli.methods.base import AdaptationMethod
from lepton_cli.methods.source_only import SourceOnly

__all__ = ["AdaptationMethod", "SourceOnly"]
