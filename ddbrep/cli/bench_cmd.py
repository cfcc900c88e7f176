"""``bench``: every benchmark (ddbrep/bench/) as ``bench <name>``; all of them when no name is given."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ddbrep.cli.common import EXIT_OK
from ddbrep.install import require_extra


def _run_latency(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ddbrep.bench.latency import print_latency_report, run_latency_bench

    console = Console(width=max(Console().width, 132))
    results = run_latency_bench(
        writes_per_region=args.writes,
        latency_ms=args.latency_ms,
        rate_per_region=args.rate,
        windows=args.window,
        console=console,
    )
    print_latency_report(results, console, args.json)
    return EXIT_OK


def _run_every_bench(bench_sub: Any) -> int:
    """`bench` alone (`make bench`): each registered benchmark, in turn, with its defaults."""
    worst = EXIT_OK
    for name, parser in bench_sub.choices.items():
        print(f"== bench {name}", flush=True)
        args = parser.parse_args([])
        worst = max(worst, int(args.func(args)))
    return worst


def _needs_local(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Every benchmark runs the Lambda code, most on simulated regions: the 'local' extra, checked first."""

    def checked(args: argparse.Namespace) -> int:
        require_extra("local", "every benchmark")
        return run(args)

    return checked


def register(subparsers: Any) -> Any:
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks on simulated regions (all of them when no name is given)",
        description="Benchmarks on simulated regions. Without a name, each benchmark runs with its defaults.",
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=False)
    bench.set_defaults(func=_needs_local(lambda args: _run_every_bench(bench_sub)))
    latency = bench_sub.add_parser(
        "latency",
        help="end-to-end replication latency per region pair vs the floor; echo invocations per 1000 writes",
        description=(
            "Paced writes in every region of the mesh; reports ReplicationLatency p50/p99 per pair next to "
            "the floor (half the poll interval + the injected latency), with the batching window as deployed "
            "and with the other side of the trade-off (1 s if 0 is deployed, else 0; a second synthesis), "
            "and echo invocations per 1000 replicated writes, with the deployed filters and without them "
            "(window 0)."
        ),
    )
    latency.add_argument("--writes", type=int, default=100, help="writes per region")
    latency.add_argument("--rate", type=float, default=10.0, help="writes per second per region")
    latency.add_argument("--latency-ms", type=float, default=70.0)
    latency.add_argument(
        "--window",
        type=int,
        action="append",
        help="batching window(s) in seconds to compare (default: as deployed, and 1 s if that is 0, else 0)",
    )
    latency.add_argument("--json", action="store_true", help="print the results as JSON too")
    latency.set_defaults(func=_run_latency)
    from ddbrep.bench import cost, replicator, tools

    replicator.register_bench(bench_sub)
    tools.register_bench(bench_sub)
    cost.register_bench(bench_sub)
    for parser in bench_sub.choices.values():
        parser.set_defaults(func=_needs_local(parser.get_default("func")))
    return bench_sub
