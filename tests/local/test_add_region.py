"""`add-region` end to end on the local runtime, through the synthesized app (docs/OPERATIONS.md).

Two regions hold data and take writes; cdk.json gains a third. The command first refuses (not
deployed), then deploys it to the running cloud (the local `cdk deploy --all`: the new region's stack,
the existing replicators' new target), waits for the mesh to catch up, backfills and verifies while
every region writes; the three regions converge, and a second run skips every step.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddbrep.cli import main
from ddbrep.cli.add_region_cmd import deploy_locally
from ddbrep.client import ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from ddbrep.local.synth import app_context, synthesize
from ddbrep.local.templates import Assembly, load_assembly, update_problems
from ddbrep.tools import add_region
from ddbrep.tools.aws import Connection, ToolError
from ddbrep.tools.verify import Side, Verify
from stacks.config import load_config
from tests.local.conftest import cloud_options
from tests.local.support import TABLE, assert_drained

OLD, NEW = ("us-east-1", "eu-west-1"), "ap-southeast-2"
KEYS = 100


def replication(regions: tuple[str, ...]) -> dict[str, Any]:
    block: dict[str, Any] = dict(app_context()["replication"])
    block["regions"] = list(regions)
    return block


def write_cdk_json(path: Path, block: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"context": {"replication": block}}))
    return path


class Writers:
    """One writer per region through the client helper, over the same keys, until stopped."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud, self.writes = cloud, 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, region: str) -> None:
        thread = threading.Thread(target=self._write, args=(region,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _write(self, region: str) -> None:
        table = ReplicatedTable(self.cloud.client(region), TABLE, region)
        rng = random.Random(region)
        n = 0
        while not self._stop.wait(0.05):
            n += 1
            pk = f"k{rng.randrange(KEYS):03d}"
            try:
                table.put_item({"pk": {"S": pk}, "sk": {"S": "0"}, "body": {"S": f"{region}-{n}"}})
                self.writes += 1
            except Exception as err:  # reported by the test
                self.errors.append(f"{region}: {err!r}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


@pytest.fixture(scope="module")
def assemblies() -> tuple[Assembly, Assembly]:
    """The app before and after the region is added to cdk.json (the deploy's synth is then cached)."""
    return load_assembly(synthesize(replication(OLD))), load_assembly(synthesize(replication((*OLD, NEW))))


@pytest.fixture(scope="module")
def cloud(
    assemblies: tuple[Assembly, Assembly], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCloud]:
    with LocalCloud(assemblies[0], cloud_options(tmp_path_factory.mktemp("add-region"))) as started:
        yield started


def endpoints(cloud: LocalCloud) -> dict[str, str]:
    return {region: cloud.region(region).endpoint_url for region in cloud.region_names}


def test_adding_a_region_to_a_live_mesh_in_one_command(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = cloud.options.log_dir
    assert log_dir is not None
    block = replication((*OLD, NEW))
    cdk_json = write_cdk_json(tmp_path / "cdk.json", block)
    state = tmp_path / "add.json"
    argv = [
        "add-region", NEW, "--table", TABLE, "--cdk-json", str(cdk_json), "--local-state", str(log_dir),
        "--state", str(state), "--settle-seconds", "1", "--segments", "4",
    ]  # fmt: skip
    # Given two regions holding data
    seed = ReplicatedTable(cloud.client(OLD[0]), TABLE, OLD[0])
    for i in range(KEYS):
        seed.put_item({"pk": {"S": f"k{i:03d}"}, "sk": {"S": "0"}, "body": {"S": "seed"}})
    assert_drained(cloud, 60)
    # When add-region runs before the new region is deployed, it refuses and says to deploy
    assert main(argv) == 2
    refusal = capsys.readouterr().err
    assert f"no endpoint for {NEW}" in refusal and "deploy first" in refusal and "--deploy" in refusal
    assert not state.exists()

    # When it runs with --deploy while both regions write, and the new one writes from its deploy on
    writers = Writers(cloud)
    for region in OLD:
        writers.start(region)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if line.startswith("3. caught_up"):
            writers.start(NEW)  # the new region takes writes as soon as it is deployed
        if line.startswith("5. verify"):
            writers.stop()  # writes in flight still arrive while it verifies

    tool = add_region.AddRegion(
        load_config(block),
        NEW,
        OLD[0],
        TABLE,
        connect=lambda: Connection(endpoints=endpoints(cloud)),
        functions=add_region.LocalFunctions(log_dir),
        state_path=state,
        deploy=lambda: deploy_locally(log_dir, block),
        segments=4,
        page_size=20,
        settle_seconds=1.0,
        say=say,
    )
    try:
        done = tool.run()
    finally:
        writers.stop()

    # Then it deployed the region, updated the existing replicators, backfilled and verified clean
    assert done, "\n".join(lines)
    assert not writers.errors and writers.writes > 50
    assert cloud.region_names == [*OLD, NEW]
    for region in OLD:
        environment = add_region.LocalFunctions(log_dir).environment(region, "orders-replicator")
        assert NEW in {t["region"] for t in json.loads(environment["REP_TARGETS"])}
    steps = json.loads(state.read_text())["steps"]
    assert steps["deployed"]["deployed_by_this_run"]
    assert steps["backfill"]["totals"]["scanned"] >= KEYS
    assert [pair["existing"] for pair in steps["verify"]["pairs"]] == list(OLD)

    # And once replication drains, every pair of the three regions holds the same items
    drained = cloud.wait_drained(90)
    failing = {name: stats.last_error for name, stats in cloud.health().items() if stats.errors}
    assert drained, ("not drained: queued", cloud.backlog(), "failing threads", failing)
    conn = Connection(endpoints=endpoints(cloud))
    regions = [*OLD, NEW]
    for i, first in enumerate(regions):
        for second in regions[i + 1 :]:
            report = Verify(conn, Side(first, TABLE), Side(second, TABLE)).run()
            assert report.ok and report.matching >= KEYS, (first, second, report.to_json())

    # And a second run skips every step it finished
    capsys.readouterr()
    assert main(argv) == 0
    rerun = capsys.readouterr().out
    for step in ("2. deployed", "3. caught_up", "4. backfill", "5. verify"):
        assert f"{step}: done by an earlier run" in rerun


def test_preflight_refuses_what_cdk_json_does_not_say(tmp_path: Path) -> None:
    config = load_config(replication((*OLD, NEW)))

    def tool(region: str, source: str, table: str = TABLE) -> add_region.AddRegion:
        def unused() -> Connection:
            raise AssertionError("preflight needs no connection")

        return add_region.AddRegion(
            config, region, source, table, unused, add_region.LocalFunctions(tmp_path), tmp_path / "s.json"
        )

    with pytest.raises(
        ToolError, match=r"sa-east-1 is not a region of the deployment.*add it to replication\.regions"
    ):
        tool("sa-east-1", OLD[0]).preflight()
    with pytest.raises(
        ToolError, match=r"--from ca-central-1 is not an existing region.*us-east-1, eu-west-1"
    ):
        tool(NEW, "ca-central-1").preflight()
    with pytest.raises(ToolError, match=r"--from ap-southeast-2 is the region being added.*us-east-1"):
        tool(NEW, NEW).preflight()
    with pytest.raises(ToolError, match=r"--table other.*pass --table orders"):
        tool(NEW, OLD[0], "other").preflight()


def test_a_running_cloud_applies_a_region_added_not_one_removed(
    assemblies: tuple[Assembly, Assembly],
) -> None:
    two, three = assemblies
    # Adding a region: a new stack, new handoff resources and changed functions in the existing ones
    assert update_problems(two, three) == []
    # Removing it again is not something the runtime simulates: refused, naming what goes
    problems = update_problems(three, two)
    assert f"stack Replicator-{NEW} is removed" in problems
    assert any(p.startswith(f"Replicator-{OLD[0]}: Handoffapsoutheast2") for p in problems), problems
