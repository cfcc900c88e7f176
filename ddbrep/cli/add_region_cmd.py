"""``add-region``: bring a region added to cdk.json into the live deployment (ddbrep/tools/add_region.py)."""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddbrep.cli.common import EXIT_DIFFERENT, EXIT_OK, add_connection_flags, guarded, use_app_config
from ddbrep.tools import add_region
from ddbrep.tools.aws import Connection, ToolError, parse_endpoints
from replicator.backfill_segments import WriteBudget

LOCAL_DEPLOY_TIMEOUT_SECONDS = 300.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "add-region",
        help="bring a region added to cdk.json into the live deployment: deploy check, backfill, verify",
        description=add_region.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("region", help="the region just added to cdk.json")
    parser.add_argument("--table", required=True, help="the table's name in the --from region")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="REGION",
        default=None,
        help="the existing region to backfill from (default: the first region of cdk.json replicating to it)",
    )
    parser.add_argument(
        "--cdk-json", type=Path, default=Path("cdk.json"), help="the deployment (default ./cdk.json)"
    )
    parser.add_argument(
        "--deploy",
        action="store_true",
        help=f"when the deployment lacks the region, deploy it: `{add_region.DEPLOY_COMMAND}` in the "
        "directory of cdk.json (with --profile); with --local-state, the running `local up` applies the "
        "synthesized app",
    )
    parser.add_argument(
        "--local-state",
        type=Path,
        metavar="LOG_DIR",
        help="a running `local up` (its --log-dir): its endpoints and function configurations",
    )
    parser.add_argument("--segments", type=int, default=4, help="backfill and verify segments (default 4)")
    parser.add_argument("--page-size", type=int, default=100, help="backfill items per scan page")
    parser.add_argument(
        "--max-items-per-second", type=float, default=None, help="backfill write budget to the new region"
    )
    parser.add_argument(
        "--max-wcu-per-second", type=float, default=None, help="backfill write budget in WCU per second"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=60.0,
        help="wait after the handoff queues are empty, and between verifies of a pair that differs "
        "(default 60: at least the iterator age the dashboards show)",
    )
    parser.add_argument(
        "--queue-wait-seconds",
        type=float,
        default=600.0,
        help="how long to wait for the handoff queues to drain before refusing (default 600)",
    )
    parser.add_argument(
        "--verify-attempts", type=int, default=3, help="verifies of a pair before it is reported different"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="state file (default .ddbrep/add-region-<region>.json; -<table> added with several tables)",
    )
    parser.add_argument(
        "--restart", action="store_true", help="ignore the state file and backfill checkpoint, start over"
    )
    add_connection_flags(parser)
    parser.set_defaults(func=guarded(run))


def run(args: argparse.Namespace) -> int:
    use_app_config(args.cdk_json, "add-region")
    from stacks import defaults
    from stacks.config import ConfigError, load_config

    try:
        block = json.loads(args.cdk_json.read_text()).get("context", {}).get(defaults.CONTEXT_KEY)
        config = add_region.table_view(load_config(block), args.table)
    except (OSError, ValueError, ConfigError) as err:
        raise ToolError(f"{args.cdk_json}: {err}") from None
    source = args.source
    if source is None:
        feeders = add_region.feeders_of(config, args.region)
        source = feeders[0] if feeders else ""
    tool = add_region.AddRegion(
        config,
        args.region,
        source,
        args.table,
        connect=_connector(args),
        functions=(
            add_region.LocalFunctions(args.local_state)
            if args.local_state
            else add_region.LambdaFunctions(
                Connection(profile=args.profile, endpoints=parse_endpoints(args.endpoint))
            )
        ),
        state_path=args.state
        or add_region.default_state_path(args.region, args.table if len(config.tables) > 1 else None),
        deploy=_deployer(args, block) if args.deploy else None,
        segments=args.segments,
        page_size=args.page_size,
        budget=WriteBudget(args.max_items_per_second, args.max_wcu_per_second),
        settle_seconds=args.settle_seconds,
        queue_wait_seconds=args.queue_wait_seconds,
        verify_attempts=args.verify_attempts,
        restart=args.restart,
        say=lambda line: print(line, flush=True),
    )
    return EXIT_OK if tool.run() else EXIT_DIFFERENT


def _connector(args: argparse.Namespace) -> Callable[[], Connection]:
    """The connection, made when first needed (after a deploy, which may add a local endpoint)."""

    def connect() -> Connection:
        endpoints = parse_endpoints(args.endpoint)
        if args.local_state:
            from ddbrep.local.state import read_endpoints

            try:
                endpoints = {**read_endpoints(args.local_state), **endpoints}
            except (OSError, ValueError) as err:
                raise ToolError(f"--local-state: {err}") from None
        return Connection(profile=args.profile, endpoints=endpoints)

    return connect


def _deployer(args: argparse.Namespace, block: Any) -> Callable[[], None]:
    if args.local_state:
        return lambda: deploy_locally(args.local_state, block)
    command = add_region.DEPLOY_COMMAND.split() + (["--profile", args.profile] if args.profile else [])
    return lambda: deploy_to_aws(command, args.cdk_json.resolve().parent)


def deploy_to_aws(command: list[str], app_dir: Path) -> None:
    """Run ``cdk deploy --all`` in the app's directory, its output and prompts on this terminal."""
    print(f"  running {' '.join(command)} in {app_dir}", flush=True)
    try:
        result = subprocess.run(command, cwd=app_dir, check=False)
    except FileNotFoundError:
        raise ToolError(
            "npx is not installed: install Node.js and the app's packages (npm ci), or deploy yourself and "
            "run this without --deploy"
        ) from None
    if result.returncode != 0:
        raise ToolError(
            f"cdk deploy failed (exit {result.returncode}): fix what it printed (a new region needs "
            "`npx --no-install cdk bootstrap aws://<account>/<region>` once), then run this again"
        )


def deploy_locally(log_dir: Path, block: Any) -> None:
    """Synthesize the app with cdk.json's replication block, and have the running ``local up`` apply it."""
    from ddbrep.local.control import ControlError, request
    from ddbrep.local.synth import SynthError, synthesize

    try:
        assembly = synthesize(block)
        reply = request(log_dir, {"fault": "deploy", "assembly": str(assembly)}, LOCAL_DEPLOY_TIMEOUT_SECONDS)
        print(f"  {reply}", flush=True)
    except (SynthError, ControlError) as err:
        raise ToolError(f"local deploy: {err}") from None
