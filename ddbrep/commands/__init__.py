"""Operator commands, each a module with ``register(subparsers)`` (argparse) and a ``run(args)``.

The main CLI (``python -m ddbrep``) registers them through ``register_all``, and each module's
``register_bench(bench_subparsers)`` as a ``bench <name>`` subcommand. ``python -m ddbrep.commands``
runs them without the main CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ddbrep.commands import backfill, bench_tools, redrive, verify

COMMANDS = (backfill, verify, redrive, bench_tools)


def register_all(subparsers: Any) -> None:
    for command in (backfill, verify, redrive):
        command.register(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddbrep.commands")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_all(subparsers)
    bench = subparsers.add_parser("bench", help="benchmarks on simulated regions")
    bench_tools.register_bench(bench.add_subparsers(dest="bench_command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
