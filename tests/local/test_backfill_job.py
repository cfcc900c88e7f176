"""The deployed backfill job rehearsed locally (docs/LOCAL.md, Backfill as an AWS job): the state machine
the template holds, interpreted by ddbrep/local/states.py, invoking the backfill function in its sandboxes.

The smallest deployment that has the job: one-way, us-east-1 to eu-west-1, three segments, two at a time.
The recipe's commands run through the command line against the cloud's control directory, as against
`local up`: data staged in the source while its replicator is stopped, the job started and watched, it
succeeds, verify finds the replica equal; then a target table that disappears fails the job, the
operator heals it and redrives, and only what had not finished runs again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from ddbrep.cli import main
from ddbrep.local.cloud import LocalCloud
from ddbrep.local.state import read_function_config
from ddbrep.local.synth import app_context
from ddbrep.local.templates import load_assembly
from tests.local.conftest import cloud_options, synthesize_in_background
from tests.local.support import TABLE

SOURCE, REPLICA = "us-east-1", "eu-west-1"
SEGMENTS = 3
ITEMS = 12  # per write: about four per segment
MACHINE = f"arn:aws:states:{SOURCE}:111111111111:stateMachine:{TABLE}-backfill"


def backfill_job_replication() -> dict[str, Any]:
    replication: dict[str, Any] = dict(app_context()["replication"])
    replication.pop("regions", None)
    replication.update(
        topology="one-way",
        source=SOURCE,
        replicas=[REPLICA],
        backfill={"enabled": True, "segments": SEGMENTS, "max_concurrency": 2},
    )
    return replication


_synth: Future[Path] = synthesize_in_background(backfill_job_replication(), "backfill-job")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # the job's retries (30 s, doubling, 6 times) compressed to 0.1 s: a segment gives up in a second
    options = dataclasses.replace(
        cloud_options(tmp_path_factory.mktemp("backfill-job")), max_retry_interval=0.1
    )
    with LocalCloud(load_assembly(_synth.result()), options) as running:
        yield running


def log_dir(cloud: LocalCloud) -> str:
    return str(cloud.options.log_dir)


def states(cloud: LocalCloud, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """`local states ...` as the runbook runs it; its JSON answer."""
    capsys.readouterr()
    assert main(["local", "states", "--log-dir", log_dir(cloud), *args]) == 0
    answer: dict[str, Any] = json.loads(capsys.readouterr().out)
    return answer


def watch(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], arn: str, timeout: float = 60
) -> dict[str, Any]:
    """describe-execution until the execution stops running."""
    deadline = time.monotonic() + timeout
    while True:
        described = states(cloud, capsys, "describe-execution", "--execution-arn", arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def verify(cloud: LocalCloud, capsys: pytest.CaptureFixture[str]) -> int:
    endpoints = [a for r in cloud.region_names for a in ("--endpoint", f"{r}={cloud.region(r).endpoint_url}")]
    capsys.readouterr()
    code = main(
        ["verify", "--table", TABLE, "--source", SOURCE, "--target", REPLICA, "--ignore-metadata", *endpoints]
    )
    capsys.readouterr()
    return code


def fault(cloud: LocalCloud, *args: str) -> None:
    assert main(["local", "fault", "--log-dir", log_dir(cloud), *args]) == 0


def write(cloud: LocalCloud, prefix: str, count: int) -> None:
    source = cloud.client(SOURCE)
    for i in range(count):
        source.put_item(
            TableName=TABLE, Item={"pk": {"S": f"{prefix}{i}"}, "sk": {"S": "0"}, "v": {"N": str(i)}}
        )


def test_the_job_and_its_function_are_deployed_from_the_template(cloud: LocalCloud) -> None:
    # the state machine of the source region only (a replica has no job), its Task the local function
    assert cloud.state_machines_in(SOURCE) == [MACHINE]
    assert cloud.state_machines_in(REPLICA) == []
    # the function's environment is the template's (plus the local endpoints)
    variables = read_function_config(Path(log_dir(cloud)), SOURCE, f"{TABLE}-backfill")["Environment"][
        "Variables"
    ]
    assert variables["REP_SOURCE_TABLE"] == TABLE and variables["BACKFILL_STOP_MARGIN_MS"] == "60000"
    assert [t["region"] for t in json.loads(variables["REP_TARGETS"])] == [REPLICA]


def test_rehearse_the_backfill_job_then_a_failed_segment_and_its_redrive(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given data the replica never received (the source's replicator stopped while it was written)
    fault(cloud, "stop", SOURCE)
    write(cloud, "old-", ITEMS)
    assert cloud.client(REPLICA).scan(TableName=TABLE, Select="COUNT")["Count"] == 0

    # When the operator starts the job (runbook: Backfill as an AWS job) and watches it
    arn = states(cloud, capsys, "start-execution", "--state-machine-arn", MACHINE, "--input", "{}")[
        "executionArn"
    ]
    described = watch(cloud, capsys, arn)
    # Then it succeeds with one summary per segment, and the replica holds every item
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert [s["segment"] for s in output] == list(range(SEGMENTS))
    assert sum(s["scanned"] for s in output) == ITEMS and sum(s["written"] for s in output) == ITEMS
    # (two segments at a time: two sandboxes of the function, as Lambda runs concurrent invocations)
    assert cloud.task_sandboxes(SOURCE, f"{TABLE}-backfill") == 2
    assert verify(cloud, capsys) == 0

    # Given more data, and the replica's table gone for the other regions (a target outage)
    write(cloud, "new-", ITEMS)
    fault(cloud, "hide-table", REPLICA, TABLE, "--seconds", "300")
    try:
        arn = states(cloud, capsys, "start-execution", "--state-machine-arn", MACHINE)["executionArn"]
        failed = watch(cloud, capsys, arn)
        # Then a segment exhausts its retries and fails the execution; it can be redriven
        assert failed["status"] == "FAILED", failed
        assert failed["error"] == "States.ExceedToleratedFailureThreshold"
        assert failed["redriveStatus"] == "REDRIVABLE"
        children = cloud.states.child_runs(arn, "EachSegment")
        assert any(c.status == "FAILED" and c.error == "BackfillError" for c in children)
        assert "ResourceNotFoundException" in next(c.cause for c in children if c.status == "FAILED")
    finally:
        fault(cloud, "heal", REPLICA)
    before = [(c.status, c.attempts) for c in children]

    # When the operator redrives it once the table is back
    assert "redriveDate" in states(cloud, capsys, "redrive-execution", "--execution-arn", arn)
    redriven = watch(cloud, capsys, arn)
    # Then it succeeds, only the unfinished segments ran again, and the replica equals the source
    assert redriven["status"] == "SUCCEEDED" and redriven["redriveCount"] == 1, redriven
    after = [c.attempts for c in cloud.states.child_runs(arn, "EachSegment")]
    assert after == [runs if status == "SUCCEEDED" else runs + 1 for status, runs in before]
    assert verify(cloud, capsys) == 0
    fault(cloud, "resume", SOURCE)
