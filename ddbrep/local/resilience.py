"""The loop every stand-in thread runs: a failure is logged, counted and shown, never fatal.

Lambda's pollers keep polling whatever goes wrong (an engine error, a record they cannot read);
a thread of the local runtime that died would instead stop replication silently for the rest of
the run. So each stream poller, SQS poller and TTL sweeper runs its step in ``run_forever``: an
exception is logged with its traceback, counted in the thread's stats (``errors``, ``last_error``,
``last_error_at``), reported to a listener (``local up`` prints a line) and followed by a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LOG = logging.getLogger("ddbrep.local")
ERROR_BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # after 1, 2, 3... consecutive failures

ErrorListener = Callable[[str, "LoopStats"], None]


@dataclass
class LoopStats:
    """What a stand-in thread reports about its own failures."""

    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None  # "ExceptionType: message"
    last_error_at: float | None = None  # epoch seconds

    def record_error(self, error: BaseException, now: float) -> None:
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self.last_error_at = now


def error_backoff(consecutive: int) -> float:
    return ERROR_BACKOFF_SECONDS[min(max(consecutive, 1), len(ERROR_BACKOFF_SECONDS)) - 1]


def run_forever(
    name: str,
    step: Callable[[], bool],
    stop: threading.Event,
    *,
    interval: float,
    stats: LoopStats,
    on_error: ErrorListener | None = None,
    expected: tuple[type[BaseException], ...] = (),
) -> None:
    """Call ``step`` until ``stop`` is set; wait ``interval`` when it returns False (nothing to do).

    Exceptions of the ``expected`` types (engine errors the loop is built to absorb) are logged as
    warnings, any other as errors; both with their traceback, both counted, both backed off.
    """
    while not stop.is_set():
        try:
            busy = step()
        except Exception as error:
            stats.record_error(error, time.time())
            level = logging.WARNING if isinstance(error, expected) else logging.ERROR
            LOG.log(
                level,
                "%s failed (%d in a row), polling again: %s",
                name,
                stats.consecutive_errors,
                error,
                exc_info=True,
            )
            if on_error is not None:
                try:
                    on_error(name, stats)
                except Exception:
                    LOG.exception("error listener of %s failed", name)
            stop.wait(error_backoff(stats.consecutive_errors))
            continue
        stats.consecutive_errors = 0
        if not busy:
            stop.wait(interval)
