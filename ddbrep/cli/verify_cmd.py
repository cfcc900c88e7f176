"""``verify``: compare a table in two regions; ``--repair`` writes the winning version where it is missing."""

from __future__ import annotations

import argparse
from typing import Any

from ddbrep.cli.common import (
    EXIT_DIFFERENT,
    EXIT_OK,
    add_connection_flags,
    add_metadata_flags,
    connection,
    guarded,
    names,
    parse_json_flag,
    print_json,
)
from ddbrep.install import require_extra
from ddbrep.tools.verify import DEFAULT_RETENTION_SECONDS, Side, Verify


def _side(value: str, default_table: str) -> Side:
    region, _sep, table = value.partition("=")
    return Side(region.strip(), (table or default_table).strip())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="compare a table in two regions (missing, extra, different items); --repair fixes them",
        description=(
            "Scan the table in two regions in parallel segments and compare every key: a tombstone "
            "equals an absent item; live items must have the same attributes and, unless "
            "--ignore-metadata, the same version (rep_ts, rep_region). Exit code 0: the tables match "
            "(with --repair: every difference was repaired); 1: they differ; 2: an error."
        ),
    )
    parser.add_argument("--table", required=True, help="the table's name (in both regions unless given)")
    parser.add_argument("--source", required=True, metavar="REGION[=TABLE]", help="the first region")
    parser.add_argument(
        "--target", required=True, metavar="REGION[=TABLE]", help="the region to compare with"
    )
    parser.add_argument(
        "--segments", type=int, default=4, help="parallel scan segments per region (default 4)"
    )
    parser.add_argument("--page-size", type=int, default=500, help="items per scan page (default 500)")
    parser.add_argument(
        "--ignore-metadata",
        action="store_true",
        help="compare user attributes only: for one-way replicas, whose version comes from the stream "
        "record and so never equals the source's. --repair then treats --source as the truth and writes "
        "to --target only",
    )
    parser.add_argument(
        "--filter",
        default=None,
        metavar="PATTERN",
        help="the target's item filter (a partial replica): source items that do not match count as absent",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="write the winning version (greater (rep_ts, rep_region)) over the losing one with the "
        "conditional put, and report what changed",
    )
    parser.add_argument("--samples", type=int, default=10, help="differences shown per kind (default 10)")
    parser.add_argument(
        "--tombstone-retention-seconds",
        type=int,
        default=DEFAULT_RETENTION_SECONDS,
        help="lifetime of tombstones a one-way repair writes (default 7 days)",
    )
    parser.add_argument("--consistent-read", action="store_true", help="strongly consistent scans (2x reads)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    add_metadata_flags(parser)
    add_connection_flags(parser)
    parser.set_defaults(func=guarded(run))


def run(args: argparse.Namespace) -> int:
    if not args.json:
        require_extra("cli", "verify's table output", instead="pass --json")
    verify = Verify(
        connection(args),
        _side(args.source, args.table),
        _side(args.target, args.table),
        segments=args.segments,
        page_size=args.page_size,
        names=names(args),
        ignore_metadata=args.ignore_metadata,
        item_filter=parse_json_flag("--filter", args.filter) if args.filter else None,
        repair=args.repair,
        sample_size=args.samples,
        retention_seconds=args.tombstone_retention_seconds,
        consistent_read=args.consistent_read,
    )
    report = verify.run()
    if args.json:
        print_json(report.to_json())
    else:
        from rich.console import Console

        Console().print(report.render())
        for line in report.unrepairable_lines():
            print(line)
    return EXIT_OK if report.ok else EXIT_DIFFERENT
