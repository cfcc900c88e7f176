"""Fixtures of the chaos tests: one local mesh of their own, faults injected into it.

The chaos tests break things on purpose (links cut, throttled and slowed, function sandboxes killed,
a region's table schema changed, a stream mapping paused), so they share one cloud among themselves
and never the one of tests/local. Every random choice comes from a fixed seed, printed so a failure
reproduces: the fault plan's (``CHAOS_SEED``) and each workload's own (see the tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.synth import synthesize
from ddbrep.local.templates import Assembly, load_assembly

CHAOS_SEED = 20240611


@pytest.fixture(scope="session")
def chaos_assembly() -> Assembly:
    """cdk.json as it ships (a three-region mesh); the same cached synthesis tests/local uses."""
    return load_assembly(synthesize())


@pytest.fixture(scope="package")
def chaos(chaos_assembly: Assembly, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A running mesh; the handoff queues' visibility timeout (the drain's backoff) capped at 2 s."""
    log_dir = tmp_path_factory.mktemp("chaos")
    print(f"chaos cloud: fault seed {CHAOS_SEED}, function logs in {log_dir}")
    options = RuntimeOptions(max_visibility_timeout=2, log_dir=log_dir, seed=CHAOS_SEED)
    with LocalCloud(chaos_assembly, options) as cloud:
        yield cloud


@pytest.fixture
def prefix() -> str:
    """A pk prefix of the test's own: tests share the cloud, never keys."""
    return f"c-{uuid.uuid4().hex[:8]}-"
