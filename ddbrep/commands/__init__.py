"""Operator commands, each a module with ``register(subparsers)`` (argparse) and a ``run(args)``.

``python -m ddbrep.commands <command> ...`` runs them on their own; the main CLI registers them too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ddbrep.commands import backfill, bench_tools, redrive, verify

COMMANDS = (backfill, verify, redrive, bench_tools)


def register_all(subparsers: Any) -> None:
    for command in COMMANDS:
        command.register(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddbrep.commands")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_all(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))
