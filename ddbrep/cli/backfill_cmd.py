"""``backfill``: copy a table's existing items to its replicas (resumable, budgeted, with progress)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
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
from ddbrep.tools.aws import ToolError
from ddbrep.tools.backfill import BackfillReport, BackfillRun, parse_targets, with_filter
from replicator.backfill_segments import SegmentState, WriteBudget


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="copy existing items to replica regions (safe while replication runs)",
        description=(
            "Scan the source table in parallel segments and write every item to each target with the "
            "replicator's conditional last-writer-wins put: a newer version in a target is never "
            "overwritten, so it is safe while live replication runs. Each segment checkpoints after "
            "every page: run the same command again to resume after a crash or Ctrl-C."
        ),
    )
    parser.add_argument("--source", required=True, metavar="REGION", help="region of the table to copy")
    parser.add_argument("--table", required=True, help="the source table's name")
    parser.add_argument(
        "--target",
        action="append",
        required=True,
        metavar="REGION[=TABLE]",
        help="a region to copy to (table name defaults to the source's); repeatable",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="REGION=PATTERN",
        help="a target's item filter (the event pattern of a partial replica), e.g. "
        'eu-west-1=\'{"tenant": {"S": ["eu"]}}\': only matching items are copied there',
    )
    parser.add_argument(
        "--segments", type=int, default=4, help="parallel scan segments / threads (default 4)"
    )
    parser.add_argument("--page-size", type=int, default=100, help="items per scan page (default 100)")
    parser.add_argument(
        "--max-items-per-second",
        type=float,
        default=None,
        help="write budget: items per second to each target, shared by all segments (default: none)",
    )
    parser.add_argument(
        "--max-wcu-per-second",
        type=float,
        default=None,
        help="write budget: write capacity units per second to each target (1 per started KB per item)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="checkpoint file (default .ddbrep/backfill-<...>.json)"
    )
    parser.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    parser.add_argument("--json", action="store_true", help="print the final report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_metadata_flags(parser)
    add_connection_flags(parser)
    parser.set_defaults(func=guarded(run))


def run(args: argparse.Namespace) -> int:
    targets = parse_targets(args.target, args.table)
    for value in args.filter:
        region, sep, pattern = value.partition("=")
        if not sep:
            raise ToolError(f"--filter {value!r}: expected REGION=PATTERN")
        targets = with_filter(targets, region, parse_json_flag("--filter", pattern))
    backfill = BackfillRun(
        connection(args),
        args.source,
        args.table,
        targets,
        segments=args.segments,
        page_size=args.page_size,
        names=names(args),
        budget=WriteBudget(args.max_items_per_second, args.max_wcu_per_second),
        checkpoint_path=args.checkpoint,
        restart=args.restart,
    )
    key_names, item_count = backfill.preflight()
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    report = _with_progress(backfill, key_names, item_count) if show else backfill.run(key_names)
    if args.json:
        print_json(report.to_json())
    else:
        _print_summary(report)
    return EXIT_OK if report.done and report.total("failed") == 0 else EXIT_DIFFERENT


def _with_progress(backfill: BackfillRun, key_names: list[str], item_count: int) -> BackfillReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    per_segment = max(1, item_count // backfill.segments) if item_count else None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn(
            "written {task.fields[written]}  stale {task.fields[stale]}  filtered {task.fields[filtered]}"
        ),
        TextColumn("{task.fields[rate]} items/s"),
        TimeRemainingColumn(),
    )
    lock = threading.Lock()
    with Progress(*columns, transient=False) as progress:
        zero: dict[str, Any] = {"written": 0, "stale": 0, "filtered": 0, "rate": "-"}
        overall = progress.add_task("all segments", total=item_count or None, **zero)
        tasks = {
            i: progress.add_task(f"segment {i}", total=per_segment, **zero) for i in range(backfill.segments)
        }
        latest: dict[int, SegmentState] = {}

        def on_page(state: SegmentState) -> None:
            with lock:
                latest[state.segment] = state
                task = tasks[state.segment]
                total = state.scanned if state.done else max(per_segment or 0, state.scanned + 1)
                progress.update(
                    task,
                    completed=state.scanned,
                    total=total,
                    written=state.written,
                    stale=state.stale,
                    filtered=state.filtered,
                    rate=_rate(progress, task),
                )
                scanned = sum(s.scanned for s in latest.values())
                progress.update(
                    overall,
                    completed=scanned,
                    total=max(item_count, scanned) if item_count else None,
                    written=sum(s.written for s in latest.values()),
                    stale=sum(s.stale for s in latest.values()),
                    filtered=sum(s.filtered for s in latest.values()),
                    rate=_rate(progress, overall),
                )

        backfill.on_page = on_page
        return backfill.run(key_names)


def _rate(progress: Any, task_id: Any) -> str:
    speed = next((task.speed for task in progress.tasks if task.id == task_id), None)
    return f"{speed:.0f}" if speed else "-"


def _print_summary(report: BackfillReport) -> None:
    doc = report.to_json()
    totals = doc["totals"]
    rate = totals["scanned"] / report.elapsed_seconds if report.elapsed_seconds > 0 else 0.0
    print(
        f"backfill {'done' if report.done else 'stopped'}: scanned {totals['scanned']}, written "
        f"{totals['written']}, stale {totals['stale']}, filtered {totals['filtered']}, failed "
        f"{totals['failed']} in {report.elapsed_seconds:.1f}s ({rate:.0f} items/s)"
    )
    if report.skipped_segments:
        print(f"segments already done by an earlier run: {report.skipped_segments}")
    if report.budget_wait_seconds:
        print(f"waited {report.budget_wait_seconds:.1f}s for the write budget")
    for state in report.segments:
        for failure in state.failures:
            print(f"  failed: {failure}", file=sys.stderr)
