"""Fixtures of the soak (``make chaos``): one three-region mesh of its own, for one long seeded run.

The mesh is cdk.json's, with one pair (us-east-1 -> eu-west-1) replicated through a cross-account role
whose sessions expire every ``SESSION_SECONDS`` (the runtime's time compression of STS): the replicator
renews its credentials many times during the run. The handoff queues' visibility (the drain's backoff)
is capped at 2 s, so a target that is down for minutes is retried every 2 s and replays as soon as it
answers. Every server is stopped by PID when the session ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.synth import app_context, synthesize
from ddbrep.local.templates import Assembly, load_assembly

SESSION_SECONDS = 20.0
ROLE_PAIR = ("us-east-1", "eu-west-1")


@dataclass(frozen=True)
class SoakSettings:
    """What the run is; every value can be set from the environment (printed at start)."""

    operations: int
    seed: int
    keys: int
    rate: float  # operations per second, all regions together

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SoakSettings:
        env = dict(os.environ if env is None else env)
        settings = cls(
            operations=int(env.get("SOAK_OPERATIONS", "10000")),
            seed=int(env.get("SOAK_SEED", "20250601")),
            keys=int(env.get("SOAK_KEYS", "120")),
            rate=float(env.get("SOAK_RATE", "36")),
        )
        if settings.operations < 300 or settings.keys < 10 or settings.rate <= 0:
            raise pytest.UsageError(
                f"SOAK_OPERATIONS={settings.operations} (at least 300), SOAK_KEYS={settings.keys} "
                f"(at least 10), SOAK_RATE={settings.rate} (above 0): raise the value that is too small"
            )
        return settings


@pytest.fixture(scope="session")
def soak_settings() -> SoakSettings:
    return SoakSettings.from_env()


@pytest.fixture(scope="session")
def soak_assembly() -> Assembly:
    """cdk.json's mesh, with the us-east-1 -> eu-west-1 pair writing through a cross-account role and the
    conflict log's per-invocation cap raised."""
    replication: dict[str, Any] = dict(app_context()["replication"])
    source, target = ROLE_PAIR
    replication["pairs"] = {
        f"{source}->{target}": {"role_arn": f"arn:aws:iam::{replication['account']}:role/orders-writer"}
    }
    # The soak compares the conflict log with the history: no entry may be left out by the per-invocation
    # cap (ConflictsNotLogged), so the cap is the largest the config takes.
    replication["function"] = {**replication.get("function", {}), "conflict_log_max_records": 1000}
    return load_assembly(synthesize(replication))


@pytest.fixture(scope="session")
def soak_cloud(
    soak_assembly: Assembly, soak_settings: SoakSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCloud]:
    log_dir = tmp_path_factory.mktemp("soak")
    print(f"soak cloud: function logs in {log_dir}")
    options = RuntimeOptions(
        max_visibility_timeout=2,
        sts_session_seconds=SESSION_SECONDS,
        log_dir=log_dir,
        seed=soak_settings.seed,
    )
    with LocalCloud(soak_assembly, options) as cloud:
        yield cloud
