"""``local alarms``: the alarms of the running ``local up`` and their last notifications.

``local up`` evaluates the stacks' CloudWatch alarms (ddbrep/local/alarms.py) and writes their states to
``<log dir>/alarm-states.json`` after every round, and each notification (a transition into ALARM or
back to OK, shaped like CloudWatch's SNS message) to ``<log dir>/alarms.jsonl``: this reads both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ddbrep.cli.common import EXIT_ERROR, EXIT_OK


def run(args: argparse.Namespace) -> int:
    from ddbrep.local.alarms import ALARM, read_notifications, read_states

    try:
        states = read_states(args.log_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    rows = [s for s in states.values() if args.region in (None, s["Region"])]
    notifications = [n for n in read_notifications(args.log_dir) if args.region in (None, _region_of(n))]
    last = notifications[-args.last :] if args.last > 0 else []
    if args.json:
        print(json.dumps({"alarms": rows, "notifications": last}, indent=2, sort_keys=True))
        return EXIT_OK
    alarmed = sum(1 for s in rows if s["StateValue"] == ALARM)
    print(f"{len(rows)} alarms, {alarmed} in ALARM ({args.log_dir / 'alarm-states.json'})")
    order = {"ALARM": 0, "INSUFFICIENT_DATA": 1, "OK": 2}
    for state in sorted(rows, key=lambda s: (order.get(s["StateValue"], 3), s["AlarmName"])):
        print(f"  {state['StateValue']:<17} {state['AlarmName']}  since {state['StateUpdatedTimestamp']}")
        if state["StateValue"] != "OK":
            print(f"  {'':<17}   {state['StateReason']}")
    print(f"last {len(last)} of {len(notifications)} notifications ({args.log_dir / 'alarms.jsonl'}):")
    for document in last:
        print(
            f"  {document['StateChangeTime']}  {document['OldStateValue']} -> {document['NewStateValue']}  "
            f"{document['AlarmName']}: {document['NewStateReason']}"
        )
    return EXIT_OK


def _region_of(document: dict[str, Any]) -> str:
    return str(document.get("AlarmArn", "::::")).split(":")[3]


def register(local_sub: Any) -> None:
    alarms = local_sub.add_parser(
        "alarms",
        help="the alarms of the running `local up`: each state and the last notifications",
        description=(
            "Print the state of every CloudWatch alarm of the stacks as the running `local up` (the one "
            "with the same --log-dir) evaluates it, and its last notifications (into ALARM, back to OK). "
            "Recipe: docs/LOCAL.md, Alarm notifications."
        ),
    )
    alarms.add_argument(
        "--log-dir", type=Path, default=Path("out/local"), help="the --log-dir of the running `local up`"
    )
    alarms.add_argument("--region", help="only this region's alarms and notifications")
    alarms.add_argument("--last", type=int, default=10, help="how many notifications to print (default 10)")
    alarms.add_argument("--json", action="store_true", help="states and notifications as JSON")
    alarms.set_defaults(func=run)
