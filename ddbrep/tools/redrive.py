"""Redrive: replay the dead-letter store, discarded batches (and a handoff queue) through the apply path.

Every replay is the protocol's conditional write, so a redrive is safe at any time and in any order:
an entry whose key has moved on since comes back "stale". Nothing is lost: an entry that still fails
stays where it is, with one more line in its ``redrive_attempts`` saying why.

- an entry with a ``write`` (a target rejected it) replays through the drain function's path
  (``Drainer.apply``);
- an entry with only a ``record`` (a malformed record, a rejected local write) replays through the
  replicator's (``Replicator.process_batch([record])``);
- a discarded batch (the document Lambda's event source mapping writes under ``aws/lambda/`` when it
  gives up on a batch: its shard and sequence range, not its records) is read again from the stream
  and replays through ``Replicator.process_batch`` like the batch Lambda gave up on. When the stream
  no longer holds the range, the document stays, marked unrecoverable, and ``verify --repair`` is the
  way to find what the batch changed.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)
from ddbrep.local import streams
from ddbrep.tools.aws import ToolError, explain
from replicator.adapters import AwsPorts
from replicator.core import defaults
from replicator.core import metrics_names as m
from replicator.core.errors import ReadFailed, WriteResult
from replicator.core.metadata import MetadataError, Version, WireItem, version_of
from replicator.core.plan import TargetWrite
from replicator.drain_core import Drainer, DrainFailed
from replicator.engine import BatchOutcome, Replicator
from replicator.settings import Settings, SettingsError, Target, parse_settings

DEAD_LETTER_PREFIX = defaults.DEAD_LETTER_PREFIX
# Where the event source mapping writes a batch it gave up on (core/defaults.ON_FAILURE_PREFIX).
# AWS: aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>
# (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html); the local stand-in:
# aws/lambda/<function>/YYYY/MM/DD/HH/<uuid> (ddbrep/local/mapping.py S3Destination). Both under this.
ON_FAILURE_PREFIX = defaults.ON_FAILURE_PREFIX
BATCH_INFO = "DDBStreamBatchInfo"
# DynamoDB Streams keeps a record 24 hours; a range older than that cannot be read again.
STREAM_RETENTION_SECONDS = defaults.STREAM_RETENTION_DAYS * defaults.DAY_SECONDS
GET_RECORDS_LIMIT = 1000
# An open shard may answer empty pages before the next record; past this many, the range is incomplete.
MAX_EMPTY_PAGES = 50
DEFAULT_SAMPLES = 20
# The stream's errors that mean "the range is gone", not "try again".
_NOT_RETAINED_ERRORS = {"TrimmedDataAccessException", "ResourceNotFoundException"}

# The queue's approximate counts (GetQueueAttributes), by what the report calls them.
QUEUE_COUNTS = {
    "waiting": "ApproximateNumberOfMessages",  # visible: the next receive gets them
    # received (by the drain function) or postponed by its backoff
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",  # sent with a delay, not yet visible
}
# How often a redrive that waits for in-flight messages looks at the queue again.
QUEUE_POLL_SECONDS = 1.0

_APPLIED = {m.RECORDS_REPLICATED, m.RECORDS_ADOPTED, m.LOCAL_TOMBSTONES_WRITTEN}
_STALE = {m.STALE_SKIPPED, m.LOCAL_WRITE_SUPERSEDED}


class RedriveOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the target already holds a newer or equal version: nothing to do
    SKIPPED = "skipped"  # the record needs no write (an echo, a TTL removal, filtered out)
    STILL_FAILING = "still_failing"  # left in place with the new reason
    DEAD_LETTERED = "dead_lettered"  # handoff queue only: rejected for good, moved to the dead-letter store
    UNRECOVERABLE = "unrecoverable"  # discarded batch only: the stream no longer holds it (verify --repair)


def settings_from_environment(variables: Mapping[str, str], endpoints: Mapping[str, str]) -> Settings:
    """The replicator's settings from its function's environment, pointed at ``endpoints``."""
    try:
        settings = parse_settings(variables)
    except SettingsError as err:
        raise ToolError(f"the function environment is not a replicator's: {err}") from None
    from dataclasses import replace

    return replace(settings, endpoint_urls={**settings.endpoint_urls, **endpoints})


def settings_from_function(lambda_client: Any, function: str, endpoints: Mapping[str, str]) -> Settings:
    """Read the deployed replicator function's environment (lambda:GetFunctionConfiguration)."""
    try:
        config = lambda_client.get_function_configuration(FunctionName=function)
    except Exception as err:
        raise explain(
            err, "lambda:GetFunctionConfiguration", lambda_client.meta.region_name, function
        ) from None
    return settings_from_environment(config.get("Environment", {}).get("Variables", {}), endpoints)


class CapturingPorts:
    """The replicator's ports, except that a failure is captured instead of parked again.

    A redriven entry that fails must stay where it is (with the new reason), not be copied into the
    dead-letter store or a handoff queue a second time.
    """

    def __init__(self, inner: AwsPorts) -> None:
        self.inner = inner
        self.failures: list[tuple[str, str]] = []  # (reason, error)
        self._lock = threading.Lock()

    def put_guarded(
        self,
        target: Target | None,
        table: str,
        item: WireItem,
        version: Version,
        *,
        return_replaced: bool = False,
        return_stored: bool = False,
    ) -> WriteResult:
        return self.inner.put_guarded(
            target, table, item, version, return_replaced=return_replaced, return_stored=return_stored
        )

    def get_item(
        self, target: Target | None, table: str, key: WireItem, *, consistent: bool
    ) -> WireItem | None:
        return self.inner.get_item(target, table, key, consistent=consistent)

    def load_handoff(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.inner.load_handoff(message)

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None:
        with self._lock:
            self.failures.append(("target_unavailable", f"{target.region}: {reason}"))

    def dead_letter(self, entry: Mapping[str, Any]) -> str:
        with self._lock:
            self.failures.append((str(entry.get("reason")), str(entry.get("error"))))
        return ""

    def log_conflicts(self, entries: Sequence[Mapping[str, Any]]) -> str:
        # A conflict a redriven write settled is real: it goes to the conflict log like any other.
        return self.inner.log_conflicts(entries)

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            failures, self.failures = self.failures, []
        return failures


@dataclass
class RedriveReport:
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in RedriveOutcome})
    samples: list[dict[str, Any]] = field(default_factory=list)
    sample_size: int = DEFAULT_SAMPLES

    repair_commands: list[str] = field(default_factory=list)  # what to run for unrecoverable entries
    # Entries a redrive cannot clear by itself (the cause is in the data or the deployment): what to do.
    needs_person: list[dict[str, str]] = field(default_factory=list)
    # A handoff queue only: its approximate counts once the run ended (QUEUE_COUNTS), None otherwise.
    queue: dict[str, int] | None = None

    def note(self, where: str, outcome: RedriveOutcome, reason: str = "", error: str = "") -> None:
        self.counts[outcome.value] += 1
        if outcome in _FAILED and len(self.samples) < self.sample_size:
            self.samples.append({"entry": where, "outcome": outcome.value, "reason": reason, "error": error})
        fix = fix_for(reason, error) if outcome is RedriveOutcome.STILL_FAILING else None
        if fix is not None:
            self.needs_person.append({"entry": where, "reason": reason, "error": error, "fix": fix})

    @property
    def parked(self) -> int:
        """Messages still in the queue (visible, in flight or delayed): not replayed by this run."""
        return sum(self.queue.values()) if self.queue else 0

    @property
    def ok(self) -> bool:
        """Nothing failed, and (for a queue) nothing is left in it: a clean queue is an empty one."""
        return not any(self.counts[outcome] for outcome in _FAILED) and not self.parked

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": self.ok,
            "counts": dict(self.counts),
            "still_failing_samples": self.samples,
            "needs_person": list(self.needs_person),
        }
        if self.queue is not None:
            doc["queue"] = dict(self.queue)
        if self.repair_commands:
            doc["repair_commands"] = list(self.repair_commands)
        return doc


# Still-failing reasons a later redrive clears once the target answers: no person needed for the entry.
_TRANSIENT = {"target_unavailable", "local_table_unavailable"}
_FIXES = {
    "target_write_rejected": (
        "the target refuses this write for good (its table's key schema or types differ from the "
        "source's?): fix the target table and redrive again, or delete the entry"
    ),
    "local_write_rejected": (
        "the source table refuses the write: fix the table (key schema, size) and redrive again, or "
        "delete the entry"
    ),
    "unknown_target": (
        "the write names a region that is no longer a target of this function: delete the entry, or "
        "redrive with the settings of the deployment that had it"
    ),
}
_DELETE = "the entry cannot be replayed: read it (the error says why), then delete it"
_TOO_LARGE = (
    "the item is over DynamoDB's 400 KB with its replication metadata and can never be written: shrink "
    "it at the source (the smaller version replicates, and the next redrive resolves this entry as "
    "stale), or delete the item at the source; then redrive again"
)


def fix_for(reason: str, error: str) -> str | None:
    """What a person must do about a still-failing entry; None when a later redrive clears it alone."""
    if reason in _TRANSIENT:
        return None
    if "ItemTooLarge" in error or "Item size has exceeded" in error:
        return _TOO_LARGE
    return _FIXES.get(reason, _DELETE)


_FAILED = (RedriveOutcome.STILL_FAILING, RedriveOutcome.DEAD_LETTERED, RedriveOutcome.UNRECOVERABLE)


class NotRetained(Exception):
    """The stream no longer holds the range of a discarded batch (trimmed, older than 24 h, gone)."""


@dataclass(frozen=True)
class DiscardedBatch:
    """What Lambda's on-failure document says about a batch it gave up on (``DDBStreamBatchInfo``)."""

    stream_arn: str
    shard_id: str
    start: str  # sequence number of the batch's first record
    end: str  # ... and of its last
    size: int
    first_arrival: float | None  # epoch seconds of the first record, when the document says

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> DiscardedBatch:
        info = document.get(BATCH_INFO)
        if not isinstance(info, Mapping):
            raise ValueError(f"no {BATCH_INFO}: not an on-failure document of a DynamoDB stream mapping")
        missing = [
            k for k in ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber") if not info.get(k)
        ]
        if missing:
            raise ValueError(f"{BATCH_INFO} lacks {', '.join(missing)}")
        return cls(
            stream_arn=str(info["streamArn"]),
            shard_id=str(info["shardId"]),
            start=str(info["startSequenceNumber"]),
            end=str(info["endSequenceNumber"]),
            size=int(info.get("batchSize") or 0),
            first_arrival=_epoch(info.get("approximateArrivalOfFirstRecord")),
        )

    def describe(self) -> str:
        return f"shard {self.shard_id}, sequence numbers {self.start}..{self.end}, {self.size} records"

    @property
    def table(self) -> str:
        """The table whose stream the batch came from (``arn:...:table/<name>/stream/<label>``)."""
        fields = self.stream_arn.split(":", 5)  # the stream label (a time) may hold ':' itself
        parts = fields[5].split("/") if len(fields) == 6 else []
        return parts[1] if len(parts) >= 2 and parts[0] == "table" else ""


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def lambda_record(
    raw: Mapping[str, Any], *, region: str, stream_arn: str, shard_id: str = ""
) -> dict[str, Any]:
    """A record as GetRecords returns it (SDK form: bytes) -> as Lambda delivered it (the one serializer)."""
    return streams.to_lambda_record(raw, region=region, stream_arn=stream_arn, shard_id=shard_id).event


def _outcome_of(batch: BatchOutcome) -> RedriveOutcome:
    counts: dict[str, int] = dict(batch.source_counts)
    for pair in batch.pair_counts.values():
        for name, value in pair.items():
            counts[name] = counts.get(name, 0) + value
    if any(counts.get(name) for name in _APPLIED):
        return RedriveOutcome.APPLIED
    if any(counts.get(name) for name in _STALE):
        return RedriveOutcome.STALE
    return RedriveOutcome.SKIPPED


@dataclass
class Redrive:
    settings: Settings
    ports: AwsPorts
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep  # between polls of a handoff queue

    def __post_init__(self) -> None:
        self.capturing = CapturingPorts(self.ports)

    # --- the dead-letter store ------------------------------------------------------------------

    def dead_letters(self, prefix: str | None = None, limit: int | None = None) -> RedriveReport:
        """Replay every entry under ``prefix`` (default: this source region's entries)."""
        prefix = prefix or f"{self.settings.dead_letter_prefix()}{self.settings.local_region}/"
        return self._replay_bucket(prefix, limit, self._replay_entry)

    def _replay_bucket(
        self,
        prefix: str,
        limit: int | None,
        replay: Callable[[Mapping[str, Any], Replicator], tuple[RedriveOutcome, str, str]],
        belongs: Callable[[Mapping[str, Any]], bool] = lambda _document: True,
    ) -> RedriveReport:
        """Replay each JSON document under ``prefix`` in the dead-letter bucket that ``belongs`` to this
        function's table, settling each one; the others are left as they are and not counted."""
        bucket = self.settings.dead_letter_bucket
        s3 = self.ports.client("s3", self.settings.local_region)
        report = RedriveReport()
        replicator = Replicator(self.settings, self.capturing, clock=self.clock)
        try:
            for done, key in enumerate(self._keys(s3, bucket, prefix)):
                if limit is not None and done >= limit:
                    break
                document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                if not belongs(document):
                    continue
                outcome, reason, error = replay(document, replicator)
                self._settle(s3, bucket, key, document, outcome, reason, error)
                report.note(key, outcome, reason, error)
        finally:
            replicator.close()
        return report

    def _settle(
        self,
        s3: Any,
        bucket: str,
        key: str,
        document: dict[str, Any],
        outcome: RedriveOutcome,
        reason: str,
        error: str,
    ) -> None:
        """An entry that still fails stays where it is with this attempt added; any other is removed."""
        if outcome not in (RedriveOutcome.STILL_FAILING, RedriveOutcome.UNRECOVERABLE):
            s3.delete_object(Bucket=bucket, Key=key)
            return
        attempts = list(document.get("redrive_attempts", []))
        attempts.append({"at": self.clock(), "reason": reason, "error": error})
        document["redrive_attempts"] = attempts
        if outcome is RedriveOutcome.UNRECOVERABLE:
            document["unrecoverable"] = True
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(document, default=str).encode(),
            ContentType="application/json",
        )

    def _keys(self, s3: Any, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except Exception as err:
            raise explain(err, "s3:ListBucket", self.settings.local_region, bucket) from None
        return sorted(keys)

    def _replay_entry(
        self, entry: Mapping[str, Any], replicator: Replicator
    ) -> tuple[RedriveOutcome, str, str]:
        self.capturing.take()
        if entry.get("write"):
            write = TargetWrite.from_json(entry["write"])
            try:
                target = self.settings.target(write.region)
            except SettingsError as err:
                return RedriveOutcome.STILL_FAILING, "unknown_target", str(err)
            if self._superseded(target, write):
                # First: an entry the target has moved past needs no write (and for an item too
                # large to write, this is the only way it is ever resolved).
                return RedriveOutcome.STALE, "", ""
            try:
                result = Drainer(self.settings, target, self.capturing, self.clock).apply(write, entry)
            except DrainFailed as err:
                return RedriveOutcome.STILL_FAILING, "target_unavailable", str(err)
            if result.metric == m.HANDOFF_REPLAYED:
                return RedriveOutcome.APPLIED, "", ""
            if result.metric == m.STALE_SKIPPED:
                return RedriveOutcome.STALE, "", ""
            reason, error = (self.capturing.take() or [("target_write_rejected", "")])[0]
            return RedriveOutcome.STILL_FAILING, reason, error
        record = entry.get("record")
        if not record:
            return (
                RedriveOutcome.STILL_FAILING,
                "nothing_to_replay",
                "the entry has neither a record nor a write",
            )
        return self._apply_records([record], replicator)

    def _apply_records(
        self, records: Sequence[Mapping[str, Any]], replicator: Replicator
    ) -> tuple[RedriveOutcome, str, str]:
        """Stream records through the live apply path; what still fails is reported, never parked."""
        batch = replicator.process_batch(records)
        failures = self.capturing.take()
        if failures:
            return RedriveOutcome.STILL_FAILING, failures[0][0], failures[0][1]
        if batch.failed_sequence_numbers:
            return (
                RedriveOutcome.STILL_FAILING,
                "local_table_unavailable",
                "the source table did not take the write",
            )
        return _outcome_of(batch), "", ""

    def _superseded(self, target: Target, write: TargetWrite) -> bool:
        """True if the target already holds this key at the write's version or a newer one."""
        try:
            stored = self.ports.get_item(target, write.table, write.keys, consistent=True)
            return stored is not None and version_of(stored, self.settings.names) >= write.version
        except (ReadFailed, MetadataError):
            return False  # cannot tell: the replay decides (and reports why it fails)

    # --- batches Lambda gave up on --------------------------------------------------------------

    def discarded_batches(self, prefix: str = ON_FAILURE_PREFIX, limit: int | None = None) -> RedriveReport:
        """Read every discarded batch under ``prefix`` again from the stream and replay it.

        Recovered (applied, stale or skipped): the document is deleted. Still failing: it stays, with
        the reason appended to its ``redrive_attempts``. No longer in the stream: it stays, marked
        ``unrecoverable``, and the report carries the ``verify --repair`` commands that find what the
        batch changed.
        """
        report = self._replay_bucket(prefix, limit, self._replay_discarded, self._of_this_table)
        if report.counts[RedriveOutcome.UNRECOVERABLE]:
            report.repair_commands = self.repair_commands()
        return report

    def repair_commands(self) -> list[str]:
        """``verify --repair`` for every target of this source: what finds a lost batch's changes."""
        settings = self.settings
        commands = []
        for target in settings.targets:
            command = (
                f"python -m ddbrep verify --table {settings.source_table} --source {settings.local_region} "
                f"--target {target.region}={target.table} --repair"
            )
            if settings.topology == "one-way":
                command += " --ignore-metadata"
            if target.item_filter:
                command += f" --filter '{json.dumps(dict(target.item_filter))}'"
            commands.append(command)
        return commands

    def _of_this_table(self, document: Mapping[str, Any]) -> bool:
        """Every mapping of a region writes its discarded batches under aws/lambda/ of the region's one
        bucket: with several tables, only the batches of this function's own table's stream are its to
        replay (another table's are left untouched, for that table's redrive). A document that does not
        say is replayed, and reported, as before."""
        try:
            table = DiscardedBatch.from_document(document).table
        except ValueError:
            return True
        return not table or table == self.settings.source_table

    def _replay_discarded(
        self, document: Mapping[str, Any], replicator: Replicator
    ) -> tuple[RedriveOutcome, str, str]:
        self.capturing.take()
        if document.get("unrecoverable"):
            return RedriveOutcome.UNRECOVERABLE, "not_retained", "marked unrecoverable by an earlier redrive"
        try:
            batch = DiscardedBatch.from_document(document)
        except ValueError as err:
            return RedriveOutcome.STILL_FAILING, "not_a_discarded_batch", str(err)
        try:
            records = self._read_range(batch)
        except NotRetained as err:
            return RedriveOutcome.UNRECOVERABLE, "not_retained", f"{batch.describe()}: {err}"
        return self._apply_records(records, replicator)

    def _read_range(self, batch: DiscardedBatch) -> list[dict[str, Any]]:
        """The records of [start, end] on the batch's shard, as Lambda delivered them."""
        if batch.first_arrival is not None and self.clock() - batch.first_arrival > STREAM_RETENTION_SECONDS:
            raise NotRetained("its records are older than the stream's 24-hour retention")
        region = self.settings.local_region
        client = self.ports.client("dynamodbstreams", region)
        end = int(batch.end)
        raws: list[dict[str, Any]] = []
        try:
            iterator = client.get_shard_iterator(
                StreamArn=batch.stream_arn,
                ShardId=batch.shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=batch.start,
            )["ShardIterator"]
            empty = 0
            while iterator and empty < MAX_EMPTY_PAGES:
                page = client.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
                records = page.get("Records", [])
                empty = 0 if records else empty + 1
                for raw in records:
                    if int(raw["dynamodb"]["SequenceNumber"]) > end:
                        return self._checked(batch, raws)
                    raws.append(raw)
                if raws and int(raws[-1]["dynamodb"]["SequenceNumber"]) == end:
                    return self._checked(batch, raws)
                iterator = page.get("NextShardIterator")
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in _NOT_RETAINED_ERRORS:
                message = err.response["Error"].get("Message", "")
                raise NotRetained(f"the stream answers {code}: {message}") from None
            raise explain(err, "dynamodb:GetRecords", region, batch.stream_arn) from None
        except BotoCoreError as err:
            raise explain(err, "dynamodb:GetRecords", region, batch.stream_arn) from None
        return self._checked(batch, raws)

    def _checked(self, batch: DiscardedBatch, raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sequence_numbers = [str(raw["dynamodb"]["SequenceNumber"]) for raw in raws]
        if batch.start not in sequence_numbers or batch.end not in sequence_numbers:
            raise NotRetained(
                "the shard no longer holds the whole range (trimmed, or the shard was replaced)"
            )
        # Only what the mapping delivered: without the local engine's artifacts (none in AWS).
        kept = streams.drop_engine_artifacts(raws, now=self.clock(), hold_seconds=0).records
        region = self.settings.local_region
        return [
            lambda_record(raw, region=region, stream_arn=batch.stream_arn, shard_id=batch.shard_id)
            for raw in kept
        ]

    # --- a handoff queue ------------------------------------------------------------------------

    def handoff_queue(
        self, target_region: str, max_messages: int | None = None, wait_seconds: float = 0.0
    ) -> RedriveReport:
        """Replay one target's handoff queue now (what its drain function does, on demand).

        Only visible messages can be received: one the drain function holds (received, or postponed by
        its backoff) or one sent with a delay is not replayed by this run. The report's ``queue`` says
        how many of each are left once the run ends, so a run never looks clean while writes are still
        parked; with ``wait_seconds``, the run keeps replaying what becomes visible until nothing is in
        flight or delayed, or the time is up.
        """
        try:
            target = self.settings.target(target_region)
        except SettingsError as err:
            raise ToolError(str(err)) from None
        if not target.handoff_queue_url:
            raise ToolError(f"target {target_region} has no handoff queue in the function's settings")
        sqs = self.ports.client("sqs", self.settings.local_region)
        # Permanent rejections go to the dead-letter store, as the drain function does.
        drainer = Drainer(self.settings, target, self.ports, self.clock)
        report = RedriveReport()
        failed: dict[str, str] = {}  # message id -> receipt handle: still failing, replayed once per run
        budget = [max_messages]
        deadline = self.clock() + wait_seconds
        while True:
            self._replay_visible(sqs, target, drainer, report, failed, budget)
            for receipt in failed.values():
                # Still failing: visible again at once, for the drain function (or the next redrive).
                sqs.change_message_visibility(
                    QueueUrl=target.handoff_queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
            report.queue = self._queue_counts(sqs, target)
            waiting_on = report.queue["in_flight"] + report.queue["delayed"]
            if not waiting_on or budget[0] == 0 or self.clock() >= deadline:
                return report
            self.sleep(min(QUEUE_POLL_SECONDS, max(0.0, deadline - self.clock())))

    def _replay_visible(
        self,
        sqs: Any,
        target: Target,
        drainer: Drainer,
        report: RedriveReport,
        failed: dict[str, str],
        budget: list[int | None],
    ) -> None:
        """Receive and replay until no message is visible (or the budget is spent)."""
        while budget[0] is None or budget[0] > 0:
            try:
                response = sqs.receive_message(
                    QueueUrl=target.handoff_queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                )
            except Exception as err:
                raise explain(
                    err, "sqs:ReceiveMessage", self.settings.local_region, target.handoff_queue_url
                ) from None
            messages = response.get("Messages", [])
            if not messages:
                return
            for message in messages:
                message_id = message.get("MessageId", "")
                if message_id in failed:  # failed earlier in this run: keep it, do not count it twice
                    failed[message_id] = message["ReceiptHandle"]
                    continue
                if budget[0] is not None:
                    budget[0] -= 1
                try:
                    result = drainer.replay(message["Body"], message_id=message_id)
                except DrainFailed as err:
                    failed[message_id] = message["ReceiptHandle"]
                    report.note(message_id, RedriveOutcome.STILL_FAILING, "target_unavailable", str(err))
                    continue
                outcome = {
                    m.HANDOFF_REPLAYED: RedriveOutcome.APPLIED,
                    m.STALE_SKIPPED: RedriveOutcome.STALE,
                    m.DEAD_LETTERED: RedriveOutcome.DEAD_LETTERED,
                }[result.metric]
                sqs.delete_message(QueueUrl=target.handoff_queue_url, ReceiptHandle=message["ReceiptHandle"])
                reason = "target_write_rejected" if outcome is RedriveOutcome.DEAD_LETTERED else ""
                report.note(message_id, outcome, reason)
                if budget[0] == 0:
                    return

    def _queue_counts(self, sqs: Any, target: Target) -> dict[str, int]:
        try:
            attributes = sqs.get_queue_attributes(
                QueueUrl=target.handoff_queue_url, AttributeNames=list(QUEUE_COUNTS.values())
            )["Attributes"]
        except Exception as err:
            raise explain(
                err, "sqs:GetQueueAttributes", self.settings.local_region, target.handoff_queue_url
            ) from None
        return {name: int(attributes.get(attribute, 0)) for name, attribute in QUEUE_COUNTS.items()}
