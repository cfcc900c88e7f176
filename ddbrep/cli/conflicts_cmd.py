"""``conflicts``: list the writes of a region that lost to a concurrent write of another region."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Any

from ddbrep.cli.common import add_connection_flags, connection, guarded
from ddbrep.install import require_extra
from ddbrep.tools.conflicts import list_conflicts, render_table


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "conflicts",
        help="list the writes that lost to a concurrent write of another region (the conflict log)",
        description=(
            "Read a region's conflict log (conflicts/ in its dead-letter bucket): each write made in that "
            "region that another region's concurrent write overwrote, with both versions and the time."
        ),
    )
    parser.add_argument("--region", required=True, help="the region whose conflict log to read")
    parser.add_argument("--bucket", required=True, help="that region's dead-letter bucket")
    parser.add_argument("--since", type=_time, required=True, help="ISO time (UTC) or epoch seconds")
    parser.add_argument("--until", type=_time, default=None, help="ISO time (UTC) or epoch seconds; now")
    parser.add_argument("--key-prefix", default="", help="only keys whose first key value starts so")
    parser.add_argument(
        "--table",
        default=None,
        help="a 2nd or later table of a multi-table deployment (its replicator's REP_OBJECT_KEY_TABLE); "
        "omit for the first or only table",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    add_connection_flags(parser)
    parser.set_defaults(func=guarded(run))


def run(args: argparse.Namespace) -> int:
    if not args.json:
        require_extra("cli", "the conflicts table", instead="pass --json")
    until = args.until if args.until is not None else time.time()
    records = list_conflicts(
        connection(args), args.region, args.bucket, args.since, until, args.key_prefix, table=args.table
    )
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
    else:
        from rich.console import Console

        Console().print(render_table(records))
    return 0
