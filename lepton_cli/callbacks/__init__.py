"""Lightning callbacks: model selection (and the report's history), and the ones that keep a run
recoverable."""

from lepton_cli.callbacks.reliability import reliability_callbacks
from lepton_cli.callbacks.selection import ReportCallback, SelectionCallback

__all__ = ["ReportCallback", "SelectionCallback", "reliability_callbacks"]
