"""``local fault``: stage an operations situation on the running ``local up`` (ddbrep/local/control.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ddbrep.cli.common import EXIT_ERROR, send_to_local_up

_KEY_HELP = "the item's key attribute as NAME=VALUE (string keys; repeat for a sort key)"


def run(args: argparse.Namespace) -> int:
    command: dict[str, Any] = {"fault": args.fault}
    for name in ("region", "seconds", "rate", "table", "role_arn"):
        if getattr(args, name, None) is not None:
            command[name] = getattr(args, name)
    if args.fault == "oversize":
        pairs = [key.partition("=") for key in args.key]
        if any(not sep or not name for name, sep, _value in pairs):
            print("error: --key expects NAME=VALUE, e.g. --key pk=big-1 --key sk=a", file=sys.stderr)
            return EXIT_ERROR
        command["keys"] = {name: value for name, _sep, value in pairs}
    return send_to_local_up(args.log_dir, command)


def register(local_sub: Any) -> None:
    fault = local_sub.add_parser(
        "fault",
        help="stage a fault on the running `local up` (to rehearse docs/OPERATIONS.md)",
        description=(
            "Ask the running `local up` (the one with the same --log-dir) to apply a fault, and print "
            "what it did. Recipes per runbook section: docs/LOCAL.md."
        ),
    )
    fault.add_argument(
        "--log-dir", type=Path, default=Path("out/local"), help="the --log-dir of the running `local up`"
    )
    kinds = fault.add_subparsers(dest="fault", required=True)

    def kind(name: str, help_text: str, *, seconds: bool = True) -> argparse.ArgumentParser:
        parser = kinds.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("region")
        if seconds:
            parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
        return parser

    kind("isolate", "cut REGION off from every other region (both ways)")
    kind("throttle", "throttle a share of the other regions' DynamoDB requests to REGION").add_argument(
        "--rate", type=float, default=1.0, help="share of requests throttled, 0-1 (default 1)"
    )
    kind("hide-table", "TABLE of REGION answers ResourceNotFoundException to the other regions").add_argument(
        "table"
    )
    kind("stop", "disable REGION's stream mappings (records wait in the stream)", seconds=False)
    kind("resume", "enable REGION's stream mappings again", seconds=False)
    kind("break", "REGION's stream functions fail every invocation: batches are retried, then discarded")
    oversize = kind(
        "oversize",
        "write an item into TABLE of REGION that fits there but not in a target with its metadata",
        seconds=False,
    )
    oversize.add_argument("table")
    oversize.add_argument("--key", action="append", required=True, metavar="NAME=VALUE", help=_KEY_HELP)
    deny_help = "every region's STS answers sts:AssumeRole for ROLE_ARN with AccessDenied"
    deny = kinds.add_parser("deny-role", help=deny_help, description=deny_help)
    deny.add_argument("role_arn", metavar="ROLE_ARN", help="the pair's role_arn (cdk.json)")
    deny.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    heal = kinds.add_parser(
        "heal", help="undo isolation, throttling, hidden tables, broken functions and denied roles"
    )
    heal.add_argument("region", nargs="?", help="only this region's links (default every region)")
    fault.set_defaults(func=run)
