"""Flags and output shared by the operator commands (backfill, verify, redrive, add-region, cost)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddbrep.install import Unavailable
from ddbrep.tools.aws import Connection, ToolError, parse_endpoints
from replicator.core.metadata import AttributeNames

EXIT_OK, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2
EXIT_FAILED = 1


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the tables are (AWS by default)")
    group.add_argument(
        "--profile", help="AWS named profile (default: the standard credential chain, e.g. AWS_PROFILE)"
    )
    group.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="REGION=URL",
        help="a simulated region's endpoint, e.g. us-east-1=http://127.0.0.1:5000 (repeatable)",
    )


def add_metadata_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attribute-prefix", default="rep_", help="prefix of the metadata attributes")
    parser.add_argument(
        "--ttl-attribute", default=None, help="the table's TTL attribute (default <prefix>expires)"
    )


def connection(args: argparse.Namespace) -> Connection:
    return Connection(profile=args.profile, endpoints=parse_endpoints(args.endpoint))


def names(args: argparse.Namespace) -> AttributeNames:
    return AttributeNames.with_prefix(args.attribute_prefix, ttl=args.ttl_attribute)


def parse_json_flag(flag: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise ToolError(f"{flag}: not valid JSON ({err})") from None


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; a ToolError is printed (what to fix) and exits with 2."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ToolError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


def print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def use_app_config(cdk_json: Path, command: str) -> None:
    """Make the CDK app's own config (``stacks.config``, which validates cdk.json) importable.

    The distribution does not include the app: an installed ddbrep imports it from the checkout that
    holds cdk.json (stacks/ beside it), and raises Unavailable when it is not there either.
    """
    if importlib.util.find_spec("stacks") is not None:
        return
    app = cdk_json.resolve().parent
    if not (app / "stacks" / "config").is_dir():
        raise Unavailable(
            f"{command} reads the deployment with the CDK app's config (stacks/config), which is not "
            f"installed with ddbrep nor beside {cdk_json}: run it in the checkout, or pass --cdk-json "
            "<checkout>/cdk.json"
        )
    sys.path.insert(0, str(app))


def send_to_local_up(log_dir: Path, command: dict[str, Any]) -> int:
    """Send ``command`` to the running `local up` with that --log-dir (ddbrep/local/control.py) and print
    its answer; an error it answers is printed to stderr (EXIT_ERROR)."""
    from ddbrep.local.control import ControlError, request

    try:
        print(request(log_dir, command))
    except ControlError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
