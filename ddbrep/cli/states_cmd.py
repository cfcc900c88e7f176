"""``local states``: the Step Functions commands of the runbook, against the running ``local up``.

docs/OPERATIONS.md starts the deployed backfill job with ``aws stepfunctions start-execution``, watches
it with ``describe-execution`` and continues a failed one with ``redrive-execution``. These are the
same commands, with the same arguments and the API's JSON answers, sent to the state machines the
running ``local up`` (the one with the same --log-dir) interprets (ddbrep/local/states.py), through its
control directory (ddbrep/local/control.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ddbrep.cli.common import send_to_local_up


def run(args: argparse.Namespace) -> int:
    command: dict[str, Any] = {"fault": args.states_command}
    for name in ("state_machine_arn", "execution_arn", "input", "name"):
        if getattr(args, name, None) is not None:
            command[name] = getattr(args, name)
    return send_to_local_up(args.log_dir, command)


def register(local_sub: Any) -> None:
    states = local_sub.add_parser(
        "states",
        help="Step Functions commands (start-execution, describe-execution, redrive-execution) on `local up`",
        description=(
            "The `aws stepfunctions` commands of docs/OPERATIONS.md (Backfill as an AWS job), answered by "
            "the state machines the running `local up` (the one with the same --log-dir) interprets. "
            "`local up` prints their ARNs. Recipe: docs/LOCAL.md."
        ),
    )
    states.add_argument(
        "--log-dir", type=Path, default=Path("out/local"), help="the --log-dir of the running `local up`"
    )
    commands = states.add_subparsers(dest="states_command", required=True)
    start = commands.add_parser(
        "start-execution", help="start an execution", description="Start an execution of a state machine."
    )
    start.add_argument("--state-machine-arn", required=True, help="as `local up` printed it")
    start.add_argument("--input", default="{}", help="the execution's input, JSON (default {})")
    start.add_argument("--name", help="the execution's name (default: a UUID)")
    for name, help_text in (
        ("describe-execution", "an execution's status, output, or error and cause"),
        (
            "redrive-execution",
            "continue a failed execution from its failed step (unsuccessful segments only)",
        ),
    ):
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--execution-arn", required=True, help="as start-execution printed it")
    states.set_defaults(func=run)
