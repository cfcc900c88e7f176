"""Add a region to a live deployment in one run: the steps of docs/OPERATIONS.md, resumable.

Run after the region was added to cdk.json. Each step checks its precondition and refuses with what
to fix; each finished step is recorded in a state file (JSON), so a re-run skips it, and the backfill
resumes from its own checkpoint beside the state file.

1. **preflight** (cdk.json only): the region is in the deployment, ``--from`` is another region of it
   that replicates into the new one, and ``--table`` is the table there.
2. **deployed**: what ``cdk deploy --all`` must have done, checked rather than trusted: the new
   region's table exists with a stream (``dynamodb:DescribeTable``), and every replicator of the pairs
   into and out of the new region lists its targets in ``REP_TARGETS``
   (``lambda:GetFunctionConfiguration``; locally the function documents ``local up`` writes).
   ``deploy`` (optional) runs the deploy first.
3. **caught up**: every existing region's handoff queues are empty (``sqs:GetQueueAttributes``, the
   approximate waiting, in-flight and delayed counts), then a settle time: a stream record its
   replicator processed before the update went to the old regions only, and must have reached the
   ``--from`` region before the backfill scans it. The settle time stands for "iterator age back near
   zero", which needs CloudWatch: give it at least the iterator age the dashboards show.
4. **backfill** from ``--from`` into the new region (``BackfillRun``, with the pair's item filter).
5. **verify** the new region against the existing ones: against ``--from`` with repair, as the
   runbook does; a pair still differing is verified again after the settle time (writes in flight
   show as different until replication delivers them). Done only when every pair verifies clean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)
from ddbrep.local.state import read_function_config
from ddbrep.tools.aws import Connection, ToolError, explain
from ddbrep.tools.backfill import BackfillRun
from ddbrep.tools.run_file import read_run_file, write_run_file
from ddbrep.tools.verify import Side, Verify, VerifyReport
from replicator.adapters import describe_error
from replicator.backfill_segments import WriteBudget
from replicator.core.metadata import AttributeNames
from replicator.settings import Target

if TYPE_CHECKING:
    from stacks.config import RegionPlan, ReplicationConfig, TargetPlan

STATE_VERSION = 1
STEPS = ("deployed", "caught_up", "backfill", "verify")
DEPLOY_COMMAND = "npx --no-install cdk deploy --all"
_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def default_state_path(region: str, table: str | None = None) -> Path:
    """``.ddbrep/add-region-<region>.json``; ``-<table>`` added for a table of a multi-table deployment,
    each of whose tables is brought in by its own run."""
    return Path(".ddbrep") / (f"add-region-{region}-{table}.json" if table else f"add-region-{region}.json")


class NotDeployed(ToolError):
    """The deploy has not (or not yet) done what the step needs."""


class Functions(Protocol):
    """Where the deployed functions' environments are read."""

    def environment(self, region: str, function: str) -> Mapping[str, str]: ...


@dataclass
class LambdaFunctions:
    """AWS: ``lambda:GetFunctionConfiguration``."""

    conn: Connection

    def environment(self, region: str, function: str) -> Mapping[str, str]:
        try:
            config = self.conn.client("lambda", region).get_function_configuration(FunctionName=function)
        except (ClientError, BotoCoreError) as err:
            if describe_error(err)[0] == "ResourceNotFoundException":
                raise NotDeployed(f"function {function} does not exist in {region}") from None
            raise explain(err, "lambda:GetFunctionConfiguration", region, function) from None
        return dict(config.get("Environment", {}).get("Variables", {}))


@dataclass
class LocalFunctions:
    """``local up``: the function documents under its log directory (ddbrep/local/state.py)."""

    state_dir: Path

    def environment(self, region: str, function: str) -> Mapping[str, str]:
        try:
            document = read_function_config(self.state_dir, region, function)
        except FileNotFoundError as err:
            raise NotDeployed(str(err)) from None
        return dict(document.get("Environment", {}).get("Variables", {}))


class StateFile:
    """The steps done so far, for one (region, table, --from); rewritten atomically after each step."""

    def __init__(self, path: Path, identity: Mapping[str, str], restart: bool = False) -> None:
        self.path, self.identity = path, dict(identity)
        self.steps: dict[str, dict[str, Any]] = {}
        doc = (
            None
            if restart
            else read_run_file(
                path,
                self.identity,
                "state file",
                "pass --state PATH for this one, or --restart to start it over",
            )
        )
        if doc is not None:
            self.steps = dict(doc.get("steps", {}))

    def done(self, step: str) -> bool:
        return step in self.steps

    def record(self, step: str, details: Mapping[str, Any]) -> None:
        self.steps[step] = {"at": time.time(), **details}
        write_run_file(self.path, {"version": STATE_VERSION, "identity": self.identity, "steps": self.steps})


@dataclass
class PairResult:
    existing: str
    repaired: bool
    attempts: int
    report: VerifyReport

    def to_json(self) -> dict[str, Any]:
        counts = self.report.counts
        return {
            "existing": self.existing,
            "ok": self.report.ok,
            "repaired": self.repaired,
            "attempts": self.attempts,
            "matching": self.report.matching,
            **counts,
            "repairs": dict(self.report.repairs),
        }


@dataclass
class AddRegion:
    """Add ``region`` (already in ``config``, the parsed cdk.json) to the deployment, from ``source``."""

    config: ReplicationConfig
    region: str
    source: str
    table: str
    connect: Callable[[], Connection]  # called after the deploy (locally the new region's endpoint)
    functions: Functions
    state_path: Path
    deploy: Callable[[], None] | None = None  # runs the deploy when the deployment lacks it
    segments: int = 4
    page_size: int = 100
    budget: WriteBudget = field(default_factory=WriteBudget)
    settle_seconds: float = 60.0
    queue_wait_seconds: float = 600.0
    verify_attempts: int = 3
    restart: bool = False
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    _conn: Connection | None = None

    # --- step 1: the deployment in cdk.json ----------------------------------------------------------------

    def preflight(self) -> None:
        names = self.config.region_names
        if self.region not in names:
            where = "replication.regions" if self.config.topology == "mesh" else "replication.replicas"
            raise ToolError(
                f"{self.region} is not a region of the deployment in cdk.json ({', '.join(names)}): add it "
                f"to {where} first, then run this again"
            )
        feeders = feeders_of(self.config, self.region)
        if not feeders:
            raise ToolError(
                f"no region of the deployment in cdk.json replicates to {self.region} (the one-way source?): "
                "add-region brings in a region that receives writes"
            )
        if self.source == self.region:
            raise ToolError(
                f"--from {self.source} is the region being added: pass the existing region to copy from, "
                f"one of {', '.join(feeders)}"
            )
        if self.source not in names:
            raise ToolError(
                f"--from {self.source} is not an existing region of the deployment: pass one of "
                f"{', '.join(feeders)} (it holds the data to copy)"
            )
        if self.source not in feeders:
            raise ToolError(
                f"--from {self.source} does not replicate to {self.region} in cdk.json, so it does not hold "
                f"what {self.region} must: pass one of {', '.join(feeders)}"
            )
        expected = self.config.region(self.source).table_name
        if self.table != expected:
            raise ToolError(
                f"--table {self.table}: the deployment in cdk.json replicates table {expected} in "
                f"{self.source}: pass --table {expected}"
            )

    def existing(self) -> list[RegionPlan]:
        return [plan for plan in self.config.regions if plan.region != self.region]

    def _pair(self, source: str, target: str) -> TargetPlan | None:
        return next((t for t in self.config.region(source).targets if t.region == target), None)

    def verified_against(self) -> list[str]:
        """The existing regions that hold what the new one must: ``--from`` first, then the others that
        replicate into it (one-way: the source only; replicas are not compared with each other)."""
        return [self.source, *(r for r in feeders_of(self.config, self.region) if r != self.source)]

    # --- step 2: deployed -----------------------------------------------------------------------------------

    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self.connect()
        return self._conn

    def check_deployed(self) -> list[str]:
        """What the deploy must have done, as found; NotDeployed naming the first thing missing."""
        plan = self.config.region(self.region)
        endpoints = self.conn().endpoints
        if endpoints and self.region not in endpoints:  # simulated regions: never fall through to AWS
            raise NotDeployed(f"no endpoint for {self.region} (simulated regions: {', '.join(endpoints)})")
        try:
            table = self.conn().dynamodb(self.region).describe_table(TableName=plan.table_name)["Table"]
        except (ClientError, BotoCoreError) as err:
            if describe_error(err)[0] == "ResourceNotFoundException":
                raise NotDeployed(f"table {plan.table_name} does not exist in {self.region}") from None
            raise explain(err, "dynamodb:DescribeTable", self.region, plan.table_name) from None
        if not table.get("StreamSpecification", {}).get("StreamEnabled"):
            raise NotDeployed(f"table {plan.table_name} in {self.region} has no stream")
        found = [f"table {plan.table_name} in {self.region} with its stream"]
        for source in self.config.regions:
            wanted = {(t.region, t.table) for t in source.targets if self.region in (source.region, t.region)}
            if not wanted:
                continue
            environment = self.functions.environment(source.region, source.replicator_function_name)
            try:
                deployed = {
                    (t["region"], t["table"]) for t in json.loads(environment.get("REP_TARGETS", "[]"))
                }
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ToolError(
                    f"{source.replicator_function_name} in {source.region}: REP_TARGETS is not the "
                    f"replicator's ({err})"
                ) from None
            missing = sorted(wanted - deployed)
            if missing:
                raise NotDeployed(
                    f"{source.replicator_function_name} in {source.region} does not replicate to "
                    f"{', '.join(f'{r} ({t})' for r, t in missing)} yet"
                )
            found.append(
                f"{source.replicator_function_name} in {source.region} replicates to "
                f"{', '.join(sorted(r for r, _t in wanted))}"
            )
        return found

    def deployed(self) -> dict[str, Any]:
        try:
            return {"found": self.check_deployed(), "deployed_by_this_run": False}
        except NotDeployed as err:
            if self.deploy is None:
                raise NotDeployed(
                    f"{err}: deploy first ({DEPLOY_COMMAND}, in the directory of cdk.json; a new AWS region "
                    "needs `cdk bootstrap` once), or pass --deploy; then run this again"
                ) from None
            self.say(f"  not deployed yet ({err}): deploying")
        self.deploy()
        self._conn = None  # the deploy may have added endpoints (local regions)
        try:
            return {"found": self.check_deployed(), "deployed_by_this_run": True}
        except NotDeployed as err:
            raise NotDeployed(
                f"the deploy finished, but {err}: check that cdk.json is the deployed app and its stacks "
                "updated (aws cloudformation describe-stacks), then run this again"
            ) from None

    # --- step 3: caught up ----------------------------------------------------------------------------------

    def queue_counts(self) -> dict[str, int]:
        """Messages in every existing region's handoff queues, by ``region/queue``."""
        counts = {}
        for plan in self.existing():
            sqs = self.conn().client("sqs", plan.region)
            for target in plan.targets:
                name = target.handoff_queue_name
                try:
                    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
                    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS))
                except (ClientError, BotoCoreError) as err:
                    if describe_error(err)[0] in (
                        "AWS.SimpleQueueService.NonExistentQueue",
                        "QueueDoesNotExist",
                    ):
                        raise NotDeployed(f"handoff queue {name} does not exist in {plan.region}") from None
                    raise explain(err, "sqs:GetQueueAttributes", plan.region, name) from None
                values = attributes.get("Attributes", {})
                counts[f"{plan.region}/{name}"] = sum(int(values.get(a, 0)) for a in QUEUE_COUNTS)
        return counts

    def caught_up(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.queue_wait_seconds
        while True:
            waiting = {queue: n for queue, n in self.queue_counts().items() if n}
            if not waiting:
                break
            if time.monotonic() >= deadline:
                listed = ", ".join(f"{queue} ({n})" for queue, n in sorted(waiting.items()))
                raise ToolError(
                    f"handoff queues still hold writes after {self.queue_wait_seconds:g} s: {listed}. "
                    "A target is not taking writes: see 'Handoff' in docs/OPERATIONS.md (or redrive "
                    "--handoff-queue), then run this again"
                )
            self.say(f"  waiting for {sum(waiting.values())} handed-off write(s) to drain")
            self.sleep(5.0)
        self.say(f"  handoff queues empty; settling {self.settle_seconds:g} s (stream batches in flight)")
        self.sleep(self.settle_seconds)
        return {"settle_seconds": self.settle_seconds}

    # --- step 4: backfill -----------------------------------------------------------------------------------

    def checkpoint_path(self) -> Path:
        return self.state_path.with_name(self.state_path.stem + ".backfill.json")

    def backfill(self) -> dict[str, Any]:
        pair = self._pair(self.source, self.region)
        assert pair is not None  # preflight
        run = BackfillRun(
            self.conn(),
            self.source,
            self.table,
            [Target(self.region, pair.table, role_arn=pair.role_arn, item_filter=pair.item_filter)],
            segments=self.segments,
            page_size=self.page_size,
            names=self.names(),
            budget=self.budget,
            checkpoint_path=self.checkpoint_path(),
            restart=self.restart,
        )
        report = run.run()
        totals = report.to_json()["totals"]
        self.say(
            f"  scanned {totals['scanned']}, written {totals['written']}, unchanged {totals['unchanged']}, "
            f"stale {totals['stale']}, filtered {totals['filtered']}, failed {totals['failed']}"
            + (f" (resumed: segments {report.skipped_segments} were done)" if report.skipped_segments else "")
        )
        return {"checkpoint": str(self.checkpoint_path()), "totals": totals}

    def names(self) -> AttributeNames:
        return AttributeNames.with_prefix(self.config.attribute_prefix, ttl=self.config.ttl_attribute)

    # --- step 5: verify -------------------------------------------------------------------------------------

    def verify_pair(self, existing: str) -> PairResult:
        pair = self._pair(existing, self.region)
        assert pair is not None
        repair = existing == self.source
        attempts = 0
        while True:
            attempts += 1
            report = Verify(
                self.conn(),
                Side(existing, self.config.region(existing).table_name),
                Side(self.region, pair.table),
                segments=self.segments,
                names=self.names(),
                ignore_metadata=self.config.topology != "mesh",
                item_filter=pair.item_filter,
                repair=repair,
            ).run()
            if report.ok or attempts >= self.verify_attempts:
                return PairResult(existing, repair, attempts, report)
            self.say(
                f"  {existing} and {self.region}: {report.differences} difference(s); verifying again in "
                f"{self.settle_seconds:g} s (writes in flight)"
            )
            self.sleep(self.settle_seconds)

    def verify(self) -> list[PairResult]:
        results = []
        for existing in self.verified_against():
            result = self.verify_pair(existing)
            self.say(f"  {pair_line(self.region, result)}")
            results.append(result)
        return results

    # --- the run --------------------------------------------------------------------------------------------

    def run(self) -> bool:
        """Every step not done yet; True when every pair verified clean (the region is in)."""
        self.preflight()
        identity = {"region": self.region, "table": self.table, "from": self.source}
        state = StateFile(self.state_path, identity, self.restart)
        self.say(
            f"adding {self.region} to {', '.join(p.region for p in self.existing())}: state {self.state_path}"
        )
        self.say(
            f"1. preflight: {self.region} is in cdk.json, replicated to from "
            f"{', '.join(feeders_of(self.config, self.region))}"
        )
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "deployed": self.deployed,
            "caught_up": self.caught_up,
            "backfill": self.backfill,
        }
        for number, (step, action) in enumerate(steps.items(), start=2):
            if state.done(step):
                self.say(f"{number}. {step}: done by an earlier run")
                continue
            self.say(f"{number}. {step}")
            state.record(step, action())
        if state.done("verify"):
            self.say("5. verify: done by an earlier run; every pair verified clean")
            for line in state.steps["verify"]["pairs"]:
                self.say(f"  {line['existing']}: ok")
            return True
        self.say("5. verify")
        results = self.verify()
        if all(r.report.ok for r in results):
            state.record("verify", {"pairs": [r.to_json() for r in results]})
            self.say(f"{self.region} is in the deployment: every pair verified clean")
            return True
        self.say(
            f"{self.region} is NOT verified: run this again to verify again (the other steps are done); "
            "differences that stay are shown by `ddbrep verify` with the same regions"
        )
        return False


def pair_line(region: str, result: PairResult) -> str:
    report = result.report
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts.items())
    repairs = ", ".join(f"{k} {v}" for k, v in report.repairs.items())
    tries = f" after {result.attempts} verifies" if result.attempts > 1 else ""
    return (
        f"{result.existing} vs {region}: {'clean' if report.ok else 'DIFFERENT'}{tries}: matching "
        f"{report.matching}, {counts}" + (f"; repaired: {repairs}" if result.repaired and repairs else "")
    )


def table_view(config: ReplicationConfig, table: str) -> ReplicationConfig:
    """The deployment as the one table ``--table`` names (add-region brings one table at a time into
    the new region: run it once per table of a multi-table deployment). A one-table deployment is
    returned as it is, and a wrong name is reported by the checks, with the name to pass."""
    if len(config.tables) <= 1:
        return config
    try:
        return config.for_table(config.table(table))
    except KeyError:
        names = ", ".join(t.name for t in config.tables)
        raise ToolError(
            f"--table {table} is not a table of the deployment in cdk.json, which replicates {names}: pass "
            "one of them (add-region works on one table at a time; run it once per table)"
        ) from None


def feeders_of(config: ReplicationConfig, region: str) -> Sequence[str]:
    """The regions that replicate into ``region``, in cdk.json's order (the default ``--from`` first)."""
    return [
        p.region for p in config.regions if p.region != region and any(t.region == region for t in p.targets)
    ]
