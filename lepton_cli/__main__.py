import sys

from lepton_cli.cli import entry_point

sys.exit(entry_point())
