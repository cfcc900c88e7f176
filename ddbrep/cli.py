"""The command line: ``python -m ddbrep --help``.

Subcommands here: ``local up`` (simulated regions running the synthesized app), ``demo`` and the
``bench`` group. Operator commands (backfill, verify, redrive, ...) live in ``ddbrep.commands``: each
module has ``register(subparsers)`` that adds its parser with ``set_defaults(func=run)``; they are
registered here through ``ddbrep.commands.register_all``. A module may also define
``register_bench(subparsers)`` to add a ``bench <name>`` subcommand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1


def _interrupt_on_signals() -> None:
    """SIGINT (also when inherited as ignored, as in a background job) and SIGTERM stop a command like
    Ctrl-C does: servers and sandboxes are stopped by PID on the way out."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# --- local up ----------------------------------------------------------------------------------------


def _cmd_local_up(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ddbrep.local.runtime import LocalCloud, RuntimeOptions
    from ddbrep.local.synth import synthesize
    from ddbrep.local.templates import load_assembly

    console = Console(width=max(Console().width, 160))
    with console.status("Synthesizing the CDK app..."):
        assembly = load_assembly(args.assembly or synthesize())
    options = RuntimeOptions(
        latency_ms=args.latency_ms,
        max_visibility_timeout=args.max_visibility_timeout,
        log_dir=args.log_dir,
    )

    def report_failure(thread: str, stats: Any) -> None:
        if stats.consecutive_errors <= 1:  # the first failure of a streak; the log file has every one
            console.print(f"[red]{thread} failed (it backs off and keeps polling):[/red] {stats.last_error}")

    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(
            filename=args.log_dir / "runtime.log",
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
    cloud = LocalCloud(assembly, options, on_error=report_failure)
    try:
        with console.status("Starting...") as status:
            cloud.start(step=lambda message: status.update(message))
        table = Table(title="Local regions (dummy credentials: any key id and secret)")
        table.add_column("region", no_wrap=True)
        table.add_column("endpoint (gateway)", no_wrap=True)
        table.add_column("engine (moto server)", no_wrap=True)
        table.add_column("functions")
        for region in cloud.region_names:
            functions = ", ".join(f.spec.name for f in cloud.functions_in(region))
            table.add_row(
                region, cloud.region(region).endpoint_url, cloud.region(region).engine_url, functions
            )
        console.print(table)
        console.print(
            f"Cross-region latency {args.latency_ms:g} ms. Logs: {args.log_dir}. Ctrl-C stops everything."
        )
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("Stopping...")
    finally:
        failing = {name: stats for name, stats in cloud.health().items() if stats.errors}
        cloud.stop()
    for name, stats in failing.items():
        console.print(f"[red]{name}: {stats.errors} failures, last: {stats.last_error}[/red]")
    return EXIT_OK


# --- demo ---------------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
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
    )
    return report(result, console)


# --- bench ---------------------------------------------------------------------------------------------


def _cmd_bench_latency(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ddbrep.local.latency import print_latency_report, run_latency_bench

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


def _add_local(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local", help="simulated AWS regions on loopback", description="Simulated regions."
    )
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="{up}")
    up = local_sub.add_parser(
        "up",
        help="start the regions and replicators of the synthesized app and keep them running",
        description=(
            "Synthesize the CDK app (cdk.json), start one moto server per region on 127.0.0.1, create the "
            "tables, queues and buckets of the templates, and run the functions under local stand-ins for "
            "their event source mappings. Prints each region's endpoint; Ctrl-C stops everything."
        ),
    )
    up.add_argument(
        "--assembly", type=Path, help="a synthesized cloud assembly directory (default: synthesize)"
    )
    up.add_argument("--latency-ms", type=float, default=70.0, help="added to every cross-region request")
    up.add_argument(
        "--max-visibility-timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help="cap the handoff queues' visibility timeout (the drain's retry backoff; default: as deployed)",
    )
    up.add_argument("--log-dir", type=Path, default=Path("out/local"), help="server and function logs")
    up.add_argument(
        "--duration", type=float, default=3600.0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    up.set_defaults(func=_cmd_local_up)


def _add_demo(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="3-region mesh, mixed conflicting workload, verify convergence, per-pair table and dashboard",
        description=(
            "Synthesize the app, start its regions locally, write concurrently from every region "
            "(conflicting puts, updates and deletes of shared keys through the client helper, plus "
            "unstamped puts and hard deletes), wait until every replicator has drained, check that all "
            "regions hold identical items, print a table per region pair and write the dashboard (PNG and "
            "HTML). Exit code 1 if any region diverges."
        ),
    )
    demo.add_argument("--keys", type=int, default=40, help="shared keys the regions fight over")
    demo.add_argument("--operations", type=int, default=150, help="writes per region")
    demo.add_argument("--latency-ms", type=float, default=70.0, help="added to every cross-region request")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--out", type=Path, default=Path("out"), help="where the dashboard and logs go")
    demo.set_defaults(func=_cmd_demo)


def _add_bench(subparsers: Any) -> Any:
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks on simulated regions (all of them when no name is given)",
        description="Benchmarks on simulated regions. Without a name, each benchmark runs with its defaults.",
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=False)
    bench.set_defaults(func=lambda args: _run_every_bench(bench_sub))
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
    latency.set_defaults(func=_cmd_bench_latency)
    from ddbrep.bench import replicator

    replicator.register_bench(bench_sub)
    return bench_sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ddbrep",
        description="Serverless DynamoDB replication across regions: local runtime, demo, operator tools.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_local(subparsers)
    _add_demo(subparsers)
    bench_sub = _add_bench(subparsers)
    _register_extensions(subparsers, bench_sub)
    return parser


def _register_extensions(subparsers: Any, bench_sub: Any) -> None:
    try:
        import ddbrep.commands as commands
    except ImportError:
        return
    register_all = getattr(commands, "register_all", None)
    if register_all is not None:
        register_all(subparsers)
    for module in getattr(commands, "COMMANDS", ()):
        register_bench = getattr(module, "register_bench", None)
        if register_bench is not None:
            register_bench(bench_sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _interrupt_on_signals()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
