import sys

from lepton_cli.cli import main

sys.exit(main())
