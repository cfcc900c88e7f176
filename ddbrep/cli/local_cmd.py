"""``local up``: the simulated regions running the synthesized app, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ddbrep.cli import alarms_cmd, fault_cmd, states_cmd
from ddbrep.cli.common import EXIT_OK
from ddbrep.install import require_extra
from ddbrep.local.state import FUNCTIONS_DIR


def startup_lines(
    endpoints: Mapping[str, str],
    functions: Mapping[str, Sequence[str]],
    log_dir: Path | None,
    latency_ms: float,
    state_machines: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """What `local up` prints once running: the endpoints to use (the gateways; the moto servers
    behind them are internal) and how the operator tools reach the functions."""
    lines = ["Local regions (dummy credentials: any key id and secret). Endpoints to use:"]
    lines += [
        f"  {region}  {url}  functions: {', '.join(functions[region])}" for region, url in endpoints.items()
    ]
    flags = " ".join(f"--endpoint {region}={url}" for region, url in endpoints.items())
    lines.append(f"Operator tools (backfill, verify): {flags}")
    if log_dir is not None:
        first = next(iter(endpoints))
        replicator = next((f for f in functions[first] if f.endswith("-replicator")), "<function>")
        lines.append(
            f"Function environments: {log_dir / FUNCTIONS_DIR}/<region>/<function>.json; redrive: "
            f"python -m ddbrep redrive --function {replicator} --region {first} --local-state {log_dir}"
        )
        lines.append(
            f"Faults: python -m ddbrep local fault --log-dir {log_dir} isolate|throttle|hide-table|"
            "deny-role|stop|resume|heal ... (docs/LOCAL.md)"
        )
        lines.append(f"Alarms: python -m ddbrep local alarms --log-dir {log_dir} (states, notifications)")
        machines = [arn for region in endpoints for arn in (state_machines or {}).get(region, ())]
        for arn in machines:
            lines.append(
                f"State machine {arn}: python -m ddbrep local states --log-dir {log_dir} start-execution "
                f"--state-machine-arn {arn} --input '{{}}' (docs/LOCAL.md)"
            )
        lines.append(
            "Add a region: add it to cdk.json, then python -m ddbrep add-region REGION --table <table> "
            f"--deploy --local-state {log_dir} (docs/OPERATIONS.md)"
        )
    lines.append(f"Cross-region latency {latency_ms:g} ms. Logs: {log_dir}. Ctrl-C stops everything.")
    return lines


def run(args: argparse.Namespace) -> int:
    require_extra("local", "the local runtime")
    from rich.console import Console

    from ddbrep.local.cloud import LocalCloud, RuntimeOptions
    from ddbrep.local.synth import synthesize
    from ddbrep.local.templates import load_assembly

    console = Console(width=max(Console().width, 160))
    with console.status("Synthesizing the CDK app..."):
        assembly = load_assembly(args.assembly or synthesize())
    options = RuntimeOptions(
        latency_ms=args.latency_ms,
        max_visibility_timeout=args.max_visibility_timeout,
        alarm_period_seconds=args.alarm_period,
        sts_session_seconds=args.sts_session_seconds,
        max_retry_interval=args.max_retry_interval,
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
        endpoints = {name: cloud.region(name).endpoint_url for name in cloud.region_names}
        functions = {name: [f.spec.name for f in cloud.functions_in(name)] for name in cloud.region_names}
        machines = {name: cloud.state_machines_in(name) for name in cloud.region_names}
        for line in startup_lines(endpoints, functions, args.log_dir, args.latency_ms, machines):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
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


def register(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local", help="simulated AWS regions on loopback", description="Simulated regions."
    )
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="{up,fault,alarms,states}")
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
    up.add_argument(
        "--alarm-period",
        type=float,
        default=None,
        metavar="SECONDS",
        help="evaluate every alarm with this metric period (compressed time; default: as deployed, 300 s)",
    )
    up.add_argument(
        "--sts-session-seconds",
        type=float,
        default=None,
        metavar="SECONDS",
        help="assumed-role credentials expire this long after AssumeRole (compressed time; default: 1 h)",
    )
    up.add_argument(
        "--max-retry-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="cap every Retry wait of the state machines (compressed time; default: as deployed)",
    )
    up.add_argument("--log-dir", type=Path, default=Path("out/local"), help="server and function logs")
    up.add_argument(
        "--duration", type=float, default=3600.0, help="stop after this many seconds (0: until Ctrl-C)"
    )
    up.set_defaults(func=run)
    fault_cmd.register(local_sub)
    alarms_cmd.register(local_sub)
    states_cmd.register(local_sub)
