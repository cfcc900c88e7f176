"""``python -m ddbrep``: see ddbrep/cli.py."""

import sys

from ddbrep.cli import main

if __name__ == "__main__":
    sys.exit(main())
