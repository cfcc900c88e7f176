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
from ddbrep.install import require_extra
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    parser.add_argument(
        "--read-first",
        action="store_true",
        help="read each target's copy first and skip the put when it already holds it: a re-run or resume "
        "then costs reads (0.5 RCU per 4 KB) instead of failed conditional puts (1 WCU per KB)",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="when output is not a terminal: one plain progress line this often (default 10)",
    )
    add_metadata_flags(parser)
    add_connection_flags(parser)
    parser.set_defaults(func=guarded(run))


def run(args: argparse.Namespace) -> int:
    quiet = args.no_progress or args.json
    bars = not quiet and sys.stderr.isatty()
    if bars:
        require_extra("cli", "backfill's progress display (on a terminal)", instead="pass --no-progress")
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
        read_first=args.read_first,
    )
    key_names, item_count = backfill.preflight()
    try:
        if bars:
            report = _with_progress(backfill, key_names, item_count)
        elif not quiet:
            report = _with_progress_lines(backfill, key_names, item_count, args.progress_every)
        else:
            report = backfill.run(key_names)
    except KeyboardInterrupt:
        print(resume_hint(backfill.checkpoint_file()), file=sys.stderr)
        return 130
    if args.json:
        print_json(report.to_json())
    else:
        print(summary(report))
        for state in report.segments:
            for failure in state.failures:
                print(f"  failed: {failure}", file=sys.stderr)
    return EXIT_OK if report.done and report.total("failed") == 0 else EXIT_DIFFERENT


def resume_hint(checkpoint: Path) -> str:
    return (
        f"interrupted: every segment saved its position after its last page in {checkpoint}. "
        "Run the same command again to resume where it stopped (add --restart to start over)."
    )


def progress_line(
    states: dict[int, SegmentState], item_count: int, elapsed: float, scanned_before: int
) -> str:
    """One plain line for logs (output that is not a terminal): counts, rate and ETA, never cut."""
    scanned = sum(s.scanned for s in states.values())
    done_now = scanned - scanned_before
    rate = done_now / elapsed if elapsed >= 1.0 and done_now > 0 else None
    total = f"/{item_count} (approximate)" if item_count else ""
    eta = ""
    if rate and item_count and scanned < item_count:
        eta = f", about {_duration((item_count - scanned) / rate)} left"
    parts = [
        f"backfill: scanned {scanned}{total}",
        f"written {sum(s.written for s in states.values())}",
        f"unchanged {sum(s.unchanged for s in states.values())}",
        f"stale {sum(s.stale for s in states.values())}",
        f"filtered {sum(s.filtered for s in states.values())}",
        f"failed {sum(s.failed for s in states.values())}",
    ]
    rate_text = f"{rate:.0f} items/s" if rate else "rate: -"
    return ", ".join(parts) + f"; {rate_text}{eta}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _with_progress_lines(
    backfill: BackfillRun, key_names: list[str], item_count: int, every: float
) -> BackfillReport:
    import time

    lock = threading.Lock()
    latest: dict[int, SegmentState] = {}
    first: list[tuple[float, int]] = []  # (time, items scanned) at the first page of this run
    last = [time.monotonic()]

    def on_page(state: SegmentState) -> None:
        with lock:
            latest[state.segment] = state
            now = time.monotonic()
            scanned = sum(s.scanned for s in latest.values())
            if not first:
                first.append((now, scanned))
            if now - last[0] >= every:
                last[0] = now
                print(progress_line(latest, item_count, now - first[0][0], first[0][1]), flush=True)

    backfill.on_page = on_page
    return backfill.run(key_names)


def _with_progress(backfill: BackfillRun, key_names: list[str], item_count: int) -> BackfillReport:
    """Bars that fit an 80-column terminal: the counts and the ETA are never cut (the bar shrinks)."""
    from rich.console import Console
    from rich.progress import Progress

    per_segment = max(1, item_count // backfill.segments) if item_count else None
    lock = threading.Lock()
    console = Console(stderr=True)
    with Progress(*progress_columns(), console=console, transient=False, expand=False) as progress:
        zero: dict[str, Any] = {"written": 0, "unchanged": 0, "stale": 0, "rate": "-"}
        overall = progress.add_task("all", total=item_count or None, **zero)
        tasks = {i: progress.add_task(f"s{i}", total=per_segment, **zero) for i in range(backfill.segments)}
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
                    unchanged=state.unchanged,
                    stale=state.stale,
                    rate=_rate(progress, task),
                )
                scanned = sum(s.scanned for s in latest.values())
                progress.update(
                    overall,
                    completed=scanned,
                    total=max(item_count, scanned) if item_count else None,
                    written=sum(s.written for s in latest.values()),
                    unchanged=sum(s.unchanged for s in latest.values()),
                    stale=sum(s.stale for s in latest.values()),
                    rate=_rate(progress, overall),
                )

        backfill.on_page = on_page
        return backfill.run(key_names)


def progress_columns() -> tuple[Any, ...]:
    """Columns that fit 80 terminal columns: the bar gives way first, counts and ETA are never cut.

    w = written, u = unchanged (already in the target), s = stale (the target holds a newer version).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    return (
        TextColumn("{task.description}", justify="right"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TextColumn("w{task.fields[written]} u{task.fields[unchanged]} s{task.fields[stale]}"),
        TextColumn("{task.fields[rate]}/s"),
        TimeRemainingColumn(compact=True),
    )


def _rate(progress: Any, task_id: Any) -> str:
    speed = next((task.speed for task in progress.tasks if task.id == task_id), None)
    return f"{speed:.0f}" if speed else "-"


def summary(report: BackfillReport) -> str:
    """The final line(s): what was done, by this run; no rate when too little ran to measure one."""
    totals = report.to_json()["totals"]
    rate = report.rate()
    timing = f"in {report.elapsed_seconds:.1f} s" + (f" ({rate:.0f} items/s)" if rate else "")
    lines = [
        f"backfill {'done' if report.done else 'stopped'}: scanned {totals['scanned']}, written "
        f"{totals['written']}, unchanged {totals['unchanged']}, stale {totals['stale']}, filtered "
        f"{totals['filtered']}, failed {totals['failed']} {timing}"
    ]
    if report.skipped_segments:
        lines.append(
            f"segments already done by an earlier run: {report.skipped_segments} "
            f"(this run scanned {report.scanned_this_run})"
        )
    if report.budget_wait_seconds:
        lines.append(f"waited {report.budget_wait_seconds:.1f} s for the write budget")
    if totals["overwrote"]:
        lines.append(
            f"of the writes, {totals['overwrote']} replaced a write made in the target region itself: "
            "possible conflicts, which a backfill cannot tell from updates and does not log (their "
            "keys and versions are under 'overwrites' in --json and the run file; docs/DESIGN.md)"
        )
    return "\n".join(lines)
