"""Fixtures of the local end-to-end tests: synthesized assemblies and running local clouds.

Clouds start moto servers on free loopback ports and stop them by PID when the fixture ends, also
when a test fails or the run is interrupted. They are package- or module-scoped: starting one costs
seconds, and every test works on its own keys; none outlives its tests (an idle cloud still polls its
streams and queues, and slows every test that runs beside it).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.synth import app_context, synthesize
from ddbrep.local.templates import Assembly, load_assembly

MESH_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
ONE_WAY_SOURCE = "us-east-1"
ONE_WAY_REPLICAS = ("eu-west-1", "ap-southeast-2")
ALARM_PERIOD_SECONDS = 2.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/local" in str(item.fspath):
            item.add_marker(pytest.mark.local)


def cloud_options(tmp: Path) -> RuntimeOptions:
    """The defaults, with the handoff queues' visibility timeout (the drain's backoff) capped at 2 s, a
    stream mapping's wait between retries of a failing batch at 1 s (10 retries in 9 s, not 28), and
    every alarm's period 2 s, evaluated every 0.5 s (an alarm's "2 of 3 periods" lasts seconds)."""
    return RuntimeOptions(
        max_visibility_timeout=2,
        max_stream_retry_backoff=1.0,
        log_dir=tmp,
        seed=7,
        alarm_period_seconds=ALARM_PERIOD_SECONDS,
        alarm_interval_seconds=0.5,
    )


def synthesize_in_background(replication: dict[str, Any], name: str) -> Future[Path]:
    """Start synthesizing a module's own app when the module is imported (while other tests run)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"synth-{name}")
    return pool.submit(synthesize, replication)


@contextlib.contextmanager
def cloud_from(synth: Future[Path], tmp: Path) -> Iterator[LocalCloud]:
    """A running cloud of the app ``synth`` produces, with the tests' options."""
    with LocalCloud(load_assembly(synth.result()), cloud_options(tmp)) as cloud:
        yield cloud


def _one_way_replication() -> dict[str, Any]:
    replication: dict[str, Any] = dict(app_context()["replication"])
    replication.pop("regions", None)
    replication.update(topology="one-way", source=ONE_WAY_SOURCE, replicas=list(ONE_WAY_REPLICAS))
    return replication


# Synthesis costs tens of seconds on a fresh machine and the mesh tests mostly wait: the one-way app
# is synthesized in the background while they run.
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth")
_one_way_synth: Future[Path] | None = None


@pytest.fixture(scope="session")
def mesh_assembly() -> Assembly:
    """cdk.json as it ships: a three-region mesh."""
    global _one_way_synth
    assembly = load_assembly(synthesize())
    if _one_way_synth is None:
        _one_way_synth = _BACKGROUND.submit(synthesize, _one_way_replication())
    return assembly


@pytest.fixture(scope="session")
def one_way_assembly() -> Assembly:
    """The same table replicated one way, from us-east-1 to two read replicas."""
    if _one_way_synth is not None:
        return load_assembly(_one_way_synth.result())
    return load_assembly(synthesize(_one_way_replication()))


@pytest.fixture(scope="package")
def mesh(mesh_assembly: Assembly, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(mesh_assembly, cloud_options(tmp_path_factory.mktemp("mesh"))) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def one_way(one_way_assembly: Assembly, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(one_way_assembly, cloud_options(tmp_path_factory.mktemp("one-way"))) as cloud:
        yield cloud


@pytest.fixture
def prefix() -> str:
    """A pk prefix of the test's own: tests share a cloud, never keys."""
    return f"t-{uuid.uuid4().hex[:8]}-"
