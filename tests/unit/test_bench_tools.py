"""The CPU accounting `bench tools` prints beside the verify figures (what caps verify locally)."""

from __future__ import annotations

import os
import time

from ddbrep.bench.tools import process_cpu_seconds


def test_process_cpu_seconds_counts_the_cpu_a_process_spent() -> None:
    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # spend 0.2 s of CPU
        pass
    after = process_cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.1


def test_process_cpu_seconds_of_no_process_is_none() -> None:
    assert process_cpu_seconds(None) is None
    assert process_cpu_seconds(2**22 + 12345) is None  # above Linux's largest PID
