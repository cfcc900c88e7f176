"""The command line, ``python -m ddbrep --help`` (or the ``ddbrep`` script): argparse only.

One module per command, each with ``register(subparsers)`` that adds its parser with
``set_defaults(func=run)``; the operations they run live in ``ddbrep.tools`` (backfill, verify,
redrive, add-region, conflicts, cost), ``ddbrep.local`` (the simulated regions) and ``ddbrep.bench``
(every benchmark).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from ddbrep.cli import (
    add_region_cmd,
    backfill_cmd,
    bench_cmd,
    conflicts_cmd,
    cost_cmd,
    demo_cmd,
    local_cmd,
    redrive_cmd,
    verify_cmd,
)
from ddbrep.cli.common import EXIT_ERROR
from ddbrep.install import Unavailable

COMMANDS = (
    local_cmd,
    demo_cmd,
    backfill_cmd,
    verify_cmd,
    redrive_cmd,
    add_region_cmd,
    conflicts_cmd,
    cost_cmd,
    bench_cmd,
)


def _interrupt_on_signals() -> None:
    """SIGINT (also when inherited as ignored, as in a background job) and SIGTERM stop a command like
    Ctrl-C does: servers and sandboxes are stopped by PID on the way out."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def build_parser(prog: str = "ddbrep") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serverless DynamoDB replication across regions: local runtime, demo, operator tools.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "ddbrep") -> int:
    """The ``ddbrep`` script; ``python -m ddbrep`` passes its own ``prog`` for the usage lines."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _interrupt_on_signals()
    try:
        return int(args.func(args))
    except Unavailable as err:  # a missing extra, or the checkout: what to install or where to run
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
