"""``redrive``: replay dead letters, discarded batches (and a handoff queue) through the apply path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ddbrep.cli.common import (
    EXIT_DIFFERENT,
    EXIT_OK,
    add_connection_flags,
    connection,
    guarded,
    print_json,
)
from ddbrep.local.state import read_function_config
from ddbrep.tools.aws import Connection, ToolError
from ddbrep.tools.redrive import Redrive, RedriveReport, settings_from_environment, settings_from_function
from replicator.adapters import AwsPorts
from replicator.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redrive",
        help="replay dead-lettered records, discarded batches (and a handoff queue) through the apply path",
        description=(
            "Replay every entry of one source region's dead-letter store with the replicator's own "
            "code and settings (read from the deployed function), and every batch Lambda gave up on "
            "(its on-failure document under aws/lambda/), read again from the stream. Entries that "
            "apply, or are stale because the target already holds a newer version, are deleted; "
            "entries that still fail stay in place with the new reason appended to their "
            "redrive_attempts; a batch the stream no longer holds stays, marked unrecoverable, and "
            "the verify --repair commands that find its changes are printed. Exit code 0: nothing "
            "still fails; 1: something does (or is unrecoverable); 2: an error."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--function", help="the replicator function whose settings to use (name or ARN)")
    source.add_argument(
        "--env-file",
        type=Path,
        help="a JSON object of the function's environment variables (REP_*), e.g. from the template",
    )
    parser.add_argument("--region", help="the function's (source) region; required with --function")
    parser.add_argument(
        "--local-state",
        type=Path,
        metavar="LOG_DIR",
        help=(
            "with --function: read the function's environment from what `local up` wrote under its "
            "--log-dir (default out/local) instead of from Lambda, and use its endpoints"
        ),
    )
    parser.add_argument("--prefix", help="only entries under this S3 prefix (default dead-letters/<region>/)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many entries")
    parser.add_argument(
        "--handoff-queue",
        metavar="TARGET_REGION",
        help="also replay this target's handoff queue now (what its drain function does)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=(
            "with --handoff-queue: keep replaying for up to this long while messages are in flight (held "
            "by the drain function or its backoff) or delayed (default 0: report them and exit 1)"
        ),
    )
    parser.add_argument(
        "--skip-dead-letters", action="store_true", help="not the dead letters (under dead-letters/)"
    )
    parser.add_argument(
        "--skip-discarded-batches",
        action="store_true",
        help="not the batches Lambda gave up on (under aws/lambda/)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_connection_flags(parser)
    parser.set_defaults(func=guarded(run))


_NOT_RETAINED = (
    "{count} discarded batch(es) can no longer be read from the stream (trimmed after 24 h, or the "
    "stream or shard is gone): redrive cannot recover them. They stay in s3://{bucket}/aws/lambda/, "
    "marked unrecoverable. Find and repair what they changed with verify --repair, for every target, "
    "then delete the documents:"
)


def run(args: argparse.Namespace) -> int:
    conn = connection(args)
    if args.local_state and not args.function:
        raise ToolError("--local-state goes with --function NAME --region REGION (the local function)")
    if args.function:
        if not args.region:
            raise ToolError("--region is required with --function (the function's region)")
        if args.local_state:
            settings, conn = _local_settings(args, conn)
        else:
            settings = settings_from_function(
                conn.client("lambda", args.region), args.function, conn.endpoints
            )
    else:
        try:
            variables = json.loads(args.env_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ToolError(f"--env-file {args.env_file}: {err}") from None
        settings = settings_from_environment(variables, conn.endpoints)
    redrive = Redrive(settings, AwsPorts(settings, session=conn.session()))
    reports: dict[str, RedriveReport] = {}
    if not args.skip_dead_letters:
        reports["dead_letters"] = redrive.dead_letters(prefix=args.prefix, limit=args.limit)
    if not args.skip_discarded_batches:
        reports["discarded_batches"] = redrive.discarded_batches(limit=args.limit)
    if args.handoff_queue:
        reports[f"handoff_queue:{args.handoff_queue}"] = redrive.handoff_queue(
            args.handoff_queue, args.limit, wait_seconds=args.wait
        )
    if args.json:
        print_json({name: report.to_json() for name, report in reports.items()})
    else:
        for name, report in reports.items():
            print_report(name, report, settings.dead_letter_bucket, args.wait)
    return EXIT_OK if all(r.ok for r in reports.values()) else EXIT_DIFFERENT


def _local_settings(args: argparse.Namespace, conn: Connection) -> tuple[Settings, Connection]:
    """The function's settings from the document `local up` wrote, and a connection to its regions."""
    try:
        document = read_function_config(args.local_state, args.region, args.function)
    except (OSError, ValueError) as err:
        raise ToolError(f"--local-state: {err}") from None
    variables = document.get("Environment", {}).get("Variables", {})
    try:
        endpoints = {**json.loads(variables.get("REP_ENDPOINT_URLS", "{}")), **conn.endpoints}
    except json.JSONDecodeError as err:
        raise ToolError(f"--local-state: REP_ENDPOINT_URLS is not JSON ({err})") from None
    return settings_from_environment(variables, endpoints), Connection(
        profile=args.profile, endpoints=endpoints
    )


def print_report(name: str, report: RedriveReport, bucket: str, waited: float) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    print(f"{name}: {counts}")
    for sample in report.samples:
        print(f"  {sample['outcome']}: {sample['entry']}: {sample['reason']}: {sample['error']}")
    if report.queue is not None:
        queue = report.queue
        print(
            f"  queue now: waiting {queue['waiting']}, in_flight {queue['in_flight']}, "
            f"delayed {queue['delayed']} (SQS approximate counts)"
        )
        if queue["in_flight"] or queue["delayed"]:
            after = f" (waited {waited:g} s)" if waited else ""
            print(
                f"  NOT DONE{after}: {queue['in_flight'] + queue['delayed']} write(s) are still in the "
                "queue but were not replayed: in flight (received by the drain function, or postponed "
                "by its backoff for up to its visibility timeout) or delayed. The drain replays them "
                "when they become visible; to replay them now, run this again with --wait 60, or later."
            )
        elif queue["waiting"]:
            print(
                f"  NOT DONE: {queue['waiting']} write(s) are still waiting in the queue (still failing "
                "above, sent during this run, or beyond --limit): run this again once the target answers."
            )
    if report.repair_commands:
        print(_NOT_RETAINED.format(count=report.counts["unrecoverable"], bucket=bucket))
        for command in report.repair_commands:
            print(f"    {command}")
    if report.needs_person:
        print(f"  {len(report.needs_person)} entry(ies) need a person (a redrive alone never clears them):")
        for entry in report.needs_person:
            print(f"    {entry['entry']}: {entry['reason']}: {entry['fix']}")
