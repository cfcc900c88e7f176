"""What the backfill command prints: true, and readable at three in the morning."""

from __future__ import annotations

import io
from pathlib import Path

from ddbrep.cli.backfill_cmd import progress_line, resume_hint, summary
from ddbrep.tools.backfill import BackfillReport
from replicator.backfill_segments import SegmentState


def state(segment: int, scanned: int, **counts: int) -> SegmentState:
    return SegmentState(segment=segment, total_segments=2, done=True, scanned=scanned, **counts)


def test_a_finished_resume_reports_no_absurd_rate() -> None:
    # Given a resume whose checkpoint had already scanned everything: nothing ran
    report = BackfillReport(
        segments=[state(0, 36_217_012, written=10), state(1, 36_217_013)],
        elapsed_seconds=0.001,
        skipped_segments=[0, 1],
        scanned_before=72_434_025,
    )
    # Then the summary gives no rate (it used to say "0.0 s (72434025 items/s)"), and says what ran
    text = summary(report)
    assert "items/s" not in text
    assert "this run scanned 0" in text
    assert text.splitlines()[0].startswith("backfill done: scanned 72434025, written 10, unchanged 0")


def test_the_rate_is_this_runs_own() -> None:
    report = BackfillReport(
        segments=[state(0, 1_500), state(1, 500)], elapsed_seconds=10.0, scanned_before=1_000
    )
    assert report.rate() == 100.0
    assert "(100 items/s)" in summary(report)


def test_a_plain_progress_line_has_every_count_rate_and_eta() -> None:
    states = {0: state(0, 300, written=250, unchanged=40, stale=10), 1: state(1, 100, written=100)}
    line = progress_line(states, item_count=1_000, elapsed=10.0, scanned_before=200)
    assert line == (
        "backfill: scanned 400/1000 (approximate), written 350, unchanged 40, stale 10, filtered 0, "
        "failed 0; 20 items/s, about 0m30s left"
    )


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    hint = resume_hint(tmp_path / "cp.json")
    assert str(tmp_path / "cp.json") in hint and "same command again" in hint and "--restart" in hint


def test_progress_rows_fit_80_columns_with_counts_and_eta_whole() -> None:
    from rich.console import Console
    from rich.progress import Progress

    from ddbrep.cli.backfill_cmd import progress_columns

    # Given an 80-column terminal and a large table (seven-digit counts)
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    progress = Progress(*progress_columns(), console=console, auto_refresh=False, expand=False)
    fields = {"written": 1_234_567, "unchanged": 765_432, "stale": 12_345, "rate": "1523"}
    task = progress.add_task("all", total=9_876_543, **fields)
    progress.update(task, completed=2_012_344)
    progress.add_task("s7", total=1_234_567, **fields)
    console.print(progress.make_tasks_table(progress.tasks))
    lines = [line for line in console.export_text().splitlines() if line.strip()]
    # Then every row fits, and nothing the operator acts on is cut
    assert lines and all(len(line) <= 80 for line in lines), lines
    row = lines[0]
    for part in ("2012344/9876543", "w1234567", "u765432", "s12345", "1523/s"):
        assert part in row, row
