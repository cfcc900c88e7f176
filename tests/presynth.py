"""Synthesize every app the local, tools and chaos tests start a cloud from, before any of them runs.

``make test`` runs this between its two phases. A synthesis (the CDK CLI, node and the Python app) takes
tens of seconds of both cores on a fresh machine; run beside the chaos tests, which wait on clocks, it
starved the clouds they had just started. Assemblies are cached by content (ddbrep/local/synth.py), so
the tests then load them at once. Two at a time: the machine has two cores.

    python -m tests.presynth
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ddbrep.local.synth import synthesize


def _configs() -> dict[str, Callable[[], dict[str, Any] | None]]:
    from tests.local import conftest, test_add_region, test_credentials

    return {
        "mesh (cdk.json)": lambda: None,
        "one-way": conftest._one_way_replication,
        "add-region before": lambda: test_add_region.replication(test_add_region.OLD),
        "add-region after": lambda: test_add_region.replication((*test_add_region.OLD, test_add_region.NEW)),
        "cross-account": test_credentials.cross_account_replication,
    }


def _started_at_import() -> dict[str, Future[Path]]:
    """The modules that start their own synthesis when imported (their futures, waited for here)."""
    from tests.local import test_backfill_job, test_table_shape, test_tables, test_types_binary_keys

    return {
        "backfill job": test_backfill_job._synth,
        "table shape": test_table_shape._synth,
        "binary keys": test_types_binary_keys._synth,
        "two tables": test_tables._synth,
    }


def main() -> int:
    started = time.monotonic()
    failed = []

    def wait(futures: dict[str, Future[Path]]) -> None:
        for name, future in futures.items():
            try:
                future.result()
            except Exception as error:  # reported; the test that needs it fails with the same error
                failed.append(f"{name}: {error}")

    pending = _started_at_import()
    wait(pending)  # those first: then two at a time
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="presynth") as pool:
        futures = {name: pool.submit(synthesize, build()) for name, build in _configs().items()}
        wait(futures)
    print(f"presynth: {len(pending) + len(futures)} apps in {time.monotonic() - started:.0f} s")
    for line in failed:
        print(f"presynth failed: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
