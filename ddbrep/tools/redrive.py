"""Redrive: replay the dead-letter store (and, on request, a handoff queue) through the apply path.

Every replay is the protocol's conditional write, so a redrive is safe at any time and in any order:
an entry whose key has moved on since comes back "stale". Nothing is lost: an entry that still fails
stays where it is, with one more line in its ``redrive_attempts`` saying why.

- an entry with a ``write`` (a target rejected it) replays through the drain function's path
  (``Drainer.apply``);
- an entry with only a ``record`` (a malformed record, a rejected local write) replays through the
  replicator's (``Replicator.process_batch([record])``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)
from ddbrep.tools.aws import ToolError, explain
from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.core.plan import TargetWrite
from replicator.drain_core import Drainer, DrainFailed
from replicator.engine import BatchOutcome, Replicator
from replicator.settings import Settings, SettingsError, Target, parse_settings

DEAD_LETTER_PREFIX = "dead-letters/"
DEFAULT_SAMPLES = 20

_APPLIED = {m.RECORDS_REPLICATED, m.RECORDS_ADOPTED, m.LOCAL_TOMBSTONES_WRITTEN}
_STALE = {m.STALE_SKIPPED, m.LOCAL_WRITE_SUPERSEDED}


class Outcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the target already holds a newer or equal version: nothing to do
    SKIPPED = "skipped"  # the record needs no write (an echo, a TTL removal, filtered out)
    STILL_FAILING = "still_failing"  # left in place with the new reason
    DEAD_LETTERED = "dead_lettered"  # handoff queue only: rejected for good, moved to the dead-letter store


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

    def target_dynamodb(self, target: Target) -> Any:
        return self.inner.target_dynamodb(target)

    def local_dynamodb(self) -> Any:
        return self.inner.local_dynamodb()

    def load_handoff(self, body: str) -> Mapping[str, Any]:
        return self.inner.load_handoff(body)

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None:
        with self._lock:
            self.failures.append(("target_unavailable", f"{target.region}: {reason}"))

    def dead_letter(self, entry: Mapping[str, Any]) -> str:
        with self._lock:
            self.failures.append((str(entry.get("reason")), str(entry.get("error"))))
        return ""

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            failures, self.failures = self.failures, []
        return failures


@dataclass
class RedriveReport:
    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    samples: list[dict[str, Any]] = field(default_factory=list)
    sample_size: int = DEFAULT_SAMPLES

    def note(self, where: str, outcome: Outcome, reason: str = "", error: str = "") -> None:
        self.counts[outcome.value] += 1
        if outcome in (Outcome.STILL_FAILING, Outcome.DEAD_LETTERED) and len(self.samples) < self.sample_size:
            self.samples.append({"entry": where, "outcome": outcome.value, "reason": reason, "error": error})

    @property
    def ok(self) -> bool:
        return self.counts[Outcome.STILL_FAILING] == 0 and self.counts[Outcome.DEAD_LETTERED] == 0

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": dict(self.counts), "still_failing_samples": self.samples}


def _outcome_of(batch: BatchOutcome) -> Outcome:
    counts: dict[str, int] = dict(batch.source_counts)
    for pair in batch.pair_counts.values():
        for name, value in pair.items():
            counts[name] = counts.get(name, 0) + value
    if any(counts.get(name) for name in _APPLIED):
        return Outcome.APPLIED
    if any(counts.get(name) for name in _STALE):
        return Outcome.STALE
    return Outcome.SKIPPED


@dataclass
class Redrive:
    settings: Settings
    ports: AwsPorts
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.capturing = CapturingPorts(self.ports)

    # --- the dead-letter store ------------------------------------------------------------------

    def dead_letters(self, prefix: str | None = None, limit: int | None = None) -> RedriveReport:
        """Replay every entry under ``prefix`` (default: this source region's entries)."""
        bucket = self.settings.dead_letter_bucket
        s3 = self.ports.client("s3", self.settings.local_region)
        prefix = prefix or f"{DEAD_LETTER_PREFIX}{self.settings.local_region}/"
        report = RedriveReport()
        replicator = Replicator(self.settings, self.capturing, clock=self.clock, sleep=self.sleep)
        try:
            for done, key in enumerate(self._keys(s3, bucket, prefix)):
                if limit is not None and done >= limit:
                    break
                entry = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                outcome, reason, error = self._replay_entry(entry, replicator)
                if outcome is Outcome.STILL_FAILING:
                    attempts = list(entry.get("redrive_attempts", []))
                    attempts.append({"at": self.clock(), "reason": reason, "error": error})
                    entry["redrive_attempts"] = attempts
                    s3.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=json.dumps(entry, default=str).encode(),
                        ContentType="application/json",
                    )
                else:
                    s3.delete_object(Bucket=bucket, Key=key)
                report.note(key, outcome, reason, error)
        finally:
            replicator.close()
        return report

    def _keys(self, s3: Any, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except Exception as err:
            raise explain(err, "s3:ListBucket", self.settings.local_region, bucket) from None
        return sorted(keys)

    def _replay_entry(self, entry: Mapping[str, Any], replicator: Replicator) -> tuple[Outcome, str, str]:
        self.capturing.take()
        if entry.get("write"):
            write = TargetWrite.from_json(entry["write"])
            try:
                target = self.settings.target(write.region)
            except SettingsError as err:
                return Outcome.STILL_FAILING, "unknown_target", str(err)
            try:
                result = Drainer(self.settings, target, self.capturing, self.clock, self.sleep).apply(
                    write, entry
                )
            except DrainFailed as err:
                return Outcome.STILL_FAILING, "target_unavailable", str(err)
            if result.metric == m.HANDOFF_REPLAYED:
                return Outcome.APPLIED, "", ""
            if result.metric == m.STALE_SKIPPED:
                return Outcome.STALE, "", ""
            reason, error = (self.capturing.take() or [("target_write_rejected", "")])[0]
            return Outcome.STILL_FAILING, reason, error
        record = entry.get("record")
        if not record:
            return Outcome.STILL_FAILING, "nothing_to_replay", "the entry has neither a record nor a write"
        batch = replicator.process_batch([record])
        failures = self.capturing.take()
        if failures:
            return Outcome.STILL_FAILING, failures[0][0], failures[0][1]
        if batch.failed_sequence_numbers:
            return Outcome.STILL_FAILING, "local_table_unavailable", "the source table did not take the write"
        return _outcome_of(batch), "", ""

    # --- a handoff queue ------------------------------------------------------------------------

    def handoff_queue(self, target_region: str, max_messages: int | None = None) -> RedriveReport:
        """Replay one target's handoff queue now (what its drain function does, on demand)."""
        try:
            target = self.settings.target(target_region)
        except SettingsError as err:
            raise ToolError(str(err)) from None
        if not target.handoff_queue_url:
            raise ToolError(f"target {target_region} has no handoff queue in the function's settings")
        sqs = self.ports.client("sqs", self.settings.local_region)
        # Permanent rejections go to the dead-letter store, as the drain function does.
        drainer = Drainer(self.settings, target, self.ports, self.clock, self.sleep)
        report = RedriveReport()
        failed_receipts: list[str] = []
        seen = 0
        while max_messages is None or seen < max_messages:
            try:
                response = sqs.receive_message(
                    QueueUrl=target.handoff_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                )
            except Exception as err:
                raise explain(
                    err, "sqs:ReceiveMessage", self.settings.local_region, target.handoff_queue_url
                ) from None
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                seen += 1
                try:
                    result = drainer.replay(message["Body"], message_id=message.get("MessageId", ""))
                except DrainFailed as err:
                    failed_receipts.append(message["ReceiptHandle"])
                    report.note(
                        message.get("MessageId", ""), Outcome.STILL_FAILING, "target_unavailable", str(err)
                    )
                    continue
                outcome = {
                    m.HANDOFF_REPLAYED: Outcome.APPLIED,
                    m.STALE_SKIPPED: Outcome.STALE,
                    m.DEAD_LETTERED: Outcome.DEAD_LETTERED,
                }[result.metric]
                sqs.delete_message(QueueUrl=target.handoff_queue_url, ReceiptHandle=message["ReceiptHandle"])
                reason = "target_write_rejected" if outcome is Outcome.DEAD_LETTERED else ""
                report.note(message.get("MessageId", ""), outcome, reason)
        for receipt in failed_receipts:
            # Still failing: visible again at once, for the drain function (or the next redrive).
            sqs.change_message_visibility(
                QueueUrl=target.handoff_queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
        return report
