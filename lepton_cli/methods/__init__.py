"""Adaptation methods, each a LightningModule over `AdaptationMethod`."""

from lepton_cli.methods.adabn import AdaBN
from lepton_cli.methods.base import AdaptationMethod
from lepton_cli.methods.cdan import CDAN
from lepton_cli.methods.coral import CORAL
from lepton_cli.methods.dann import DANN
from lepton_cli.methods.distill import Distill
from lepton_cli.methods.erm import ERM
from lepton_cli.methods.finetune import FineTune
from lepton_cli.methods.mcc import MCC
from lepton_cli.methods.mixstyle import MixStyle
from lepton_cli.methods.mldg import MLDG
from lepton_cli.methods.pseudo_label import PseudoLabel
from lepton_cli.methods.source_only import SourceOnly
from lepton_cli.methods.vada import VADA

__all__ = [
    "CDAN", "CORAL", "DANN", "ERM", "MCC", "MLDG", "VADA", "AdaBN", "AdaptationMethod", "Distill", "FineTune", "MixStyle",
    "PseudoLabel", "SourceOnly",
]
