"""``python -m ddbrep``: see ddbrep/cli/__init__.py (the ``ddbrep`` script runs the same ``main``)."""

import sys

from ddbrep.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m ddbrep"))
