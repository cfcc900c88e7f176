"""``demo``: a 3-region mesh on simulated regions, a conflicting workload, convergence checked."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ddbrep.install import require_extra


def run(args: argparse.Namespace) -> int:
    require_extra("demo", "the demo")
    from rich.console import Console

    from ddbrep.demo import report, run_demo

    console = Console(width=max(Console().width, 132))
    result = run_demo(
        console=console,
        keys=args.keys,
        operations_per_region=args.operations,
        latency_ms=args.latency_ms,
        out_dir=args.out,
        seed=args.seed,
        as_shipped=args.as_shipped,
    )
    return report(result, console)


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="3-region mesh, mixed conflicting workload, verify convergence, per-pair table and dashboard",
        description=(
            "Synthesize the app, start its regions locally, write concurrently from every region "
            "(conflicting puts, updates and deletes of shared keys through the client helper, plus "
            "unstamped puts and hard deletes), wait until every replicator has drained, check that all "
            "regions hold identical items, print a table per region pair and write the dashboard (PNG and "
            "HTML). A one-table deployment gets a second table (customers, with a global secondary "
            "index) unless --as-shipped. Exit code 1 if any region or index diverges."
        ),
    )
    demo.add_argument("--keys", type=int, default=40, help="shared keys the regions fight over")
    demo.add_argument("--operations", type=int, default=150, help="writes per region")
    demo.add_argument("--latency-ms", type=float, default=70.0, help="added to every cross-region request")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--as-shipped",
        action="store_true",
        help="run cdk.json's deployment exactly (by default a one-table deployment gets a second table, "
        "customers, with a global secondary index)",
    )
    demo.add_argument("--out", type=Path, default=Path("out"), help="where the dashboard and logs go")
    demo.set_defaults(func=run)
