"""ddbrep/local/worker.FunctionPool: concurrent invocations of one function, one sandbox each (as Lambda
serves them), every sandbox following the function's own worker (its configuration, its faults)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from ddbrep.local import worker as worker_module
from ddbrep.local.worker import FunctionConfig, FunctionPool, Invocation

CONFIG = FunctionConfig(
    name="orders-backfill", region="us-east-1", handler="h.h", environment={}, code_paths=[]
)


class FakeWorker:
    """A sandbox that records what it ran with; blocks until ``release`` while ``hold`` is set."""

    hold = threading.Event()
    release = threading.Event()
    created: list[FakeWorker] = []

    def __init__(self, config: FunctionConfig, on_output: Any = None) -> None:
        self.config, self.failing_until = config, 0.0
        self.seen: list[tuple[FunctionConfig, float]] = []
        self.stopped = self.terminated = False
        FakeWorker.created.append(self)

    def invoke(self, event: Any) -> Invocation:
        self.seen.append((self.config, self.failing_until))
        if FakeWorker.hold.is_set():
            FakeWorker.release.wait(5)
        return Invocation("r", True, event)

    def reconfigure(self, config: FunctionConfig) -> None:
        self.config = config

    def stop(self) -> None:
        self.stopped = True

    def terminate(self) -> None:
        self.terminated = True


@pytest.fixture
def fake_workers(monkeypatch: pytest.MonkeyPatch) -> type[FakeWorker]:
    monkeypatch.setattr(worker_module, "FunctionWorker", FakeWorker)
    FakeWorker.created = []
    FakeWorker.hold.clear()
    FakeWorker.release.clear()
    return FakeWorker


def test_one_sandbox_per_invocation_in_flight_reused_once_idle(fake_workers: type[FakeWorker]) -> None:
    pool = FunctionPool(FakeWorker(CONFIG))  # type: ignore[arg-type]
    assert pool.invoke({"n": 1}).payload == {"n": 1} and pool.size == 1  # one at a time: the primary
    fake_workers.hold.set()
    threads = [threading.Thread(target=pool.invoke, args=({"n": i},)) for i in range(3)]
    for thread in threads:
        thread.start()
    while sum(len(w.seen) for w in fake_workers.created) < 4:
        threading.Event().wait(0.01)
    fake_workers.release.set()
    for thread in threads:
        thread.join(5)
    assert pool.size == 3  # three in flight at once: three sandboxes
    pool.invoke({"n": 9})
    assert pool.size == 3  # idle ones are reused
    pool.terminate()  # the runtime stops: every sandbox killed at once, the primary's too
    assert all(w.terminated for w in fake_workers.created)
    pool.stop()
    assert [w.stopped for w in fake_workers.created] == [False, True, True]  # the primary is the runtime's


def test_every_sandbox_follows_the_functions_configuration_and_faults(fake_workers: type[FakeWorker]) -> None:
    primary = FakeWorker(CONFIG)
    pool = FunctionPool(primary)  # type: ignore[arg-type]
    fake_workers.hold.set()
    threads = [threading.Thread(target=pool.invoke, args=({},)) for _ in range(2)]
    for thread in threads:
        thread.start()
    fake_workers.release.set()
    for thread in threads:
        thread.join(5)
    fake_workers.hold.clear()
    [extra] = [w for w in fake_workers.created if w is not primary]
    # a deploy updates the function (its worker), a fault breaks it: the next invocation of every
    # sandbox runs with both
    updated = dataclasses.replace(CONFIG, environment={"REP_TARGETS": "[]"})
    primary.config, primary.failing_until = updated, 123.0
    pool._idle = [extra]  # the extra sandbox is the idle one
    pool.invoke({})
    assert extra.seen[-1] == (updated, 123.0)


def test_terminate_ends_an_invocation_in_flight_as_a_crash(tmp_path: Any) -> None:
    import time

    from ddbrep.local.worker import FunctionWorker

    (tmp_path / "slow.py").write_text("import time\n\ndef handler(event, context):\n    time.sleep(60)\n")
    config = dataclasses.replace(
        CONFIG, handler="slow.handler", code_paths=[str(tmp_path)], timeout_seconds=120
    )
    sandbox = FunctionWorker(config)
    sandbox.start()
    outcome: list[Invocation] = []
    invoking = threading.Thread(target=lambda: outcome.append(sandbox.invoke({})))
    invoking.start()
    time.sleep(0.5)
    began = time.monotonic()
    sandbox.terminate()
    invoking.join(10)
    sandbox.stop()
    assert time.monotonic() - began < 5
    [invocation] = outcome
    assert not invocation.ok and invocation.payload["errorType"] == "Runtime.ExitError"
