"""boto3 behind the small surfaces the replicator needs: the protocol's conditional put and read
(retried and classified here, so the engine sees only domain answers), handoff, dead letters, the
conflict log."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from replicator.client_factory import FUNCTION_CLIENTS, ClientFactory, client_config
from replicator.core import defaults
from replicator.core.conditions import guarded_put
from replicator.core.errors import ErrorKind, ReadFailed, WriteResult, classify_error
from replicator.core.metadata import AttributeNames, Version, WireItem
from replicator.core.plan import TargetWrite
from replicator.core.wire import from_sdk, to_sdk
from replicator.settings import Settings, Target

# SQS accepts up to 1 MiB in AWS (256 KiB in older tooling): larger payloads go to S3 with a pointer.
MAX_INLINE_MESSAGE_BYTES = 200 * 1024


def describe_error(exc: BaseException) -> tuple[str | None, int | None, str]:
    """(error code, HTTP status, message) of a failed call; code None means no answer (network)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error.get("Code"), status, str(error.get("Message") or exc)
    if isinstance(exc, ParamValidationError):
        # botocore refused the request before sending it: the write itself is invalid, not the network
        return "ParamValidationError", None, str(exc)
    if isinstance(exc, BotoCoreError | OSError):
        return None, None, f"{type(exc).__name__}: {exc}"
    return type(exc).__name__, None, str(exc)


@dataclass(slots=True)
class Answer:
    """One call's outcome after its retries: its response, or the kind of its last failure."""

    kind: ErrorKind | None  # None: answered
    retries: int
    error: str = ""
    response: Any = None  # the answer, or a failed call's error response (it may carry the stored item)


def with_retries(
    call: Callable[[], Any],
    attempts: int,
    base_delay_ms: int,
    sleep: Callable[[float], None] = time.sleep,
) -> Answer:
    """Run one call; retry retryable failures with exponential backoff and full jitter."""
    retries = 0
    while True:
        try:
            return Answer(None, retries, response=call())
        except Exception as exc:  # classified below; nothing escapes unclassified
            code, status, message = describe_error(exc)
            kind = classify_error(code, status)
            if kind is not ErrorKind.RETRYABLE or retries + 1 >= attempts:
                # A failed condition's answer may carry the stored item (ReturnValuesOnConditionCheckFailure).
                failed = getattr(exc, "response", None)
                return Answer(kind, retries, f"{code or 'NetworkError'}: {message}", failed)
            delay = base_delay_ms * (2**retries) / 1000.0
            sleep(random.uniform(0, delay))
            retries += 1


class DynamoPorts:
    """The protocol's two DynamoDB calls, the conditional put and the read, on low-level clients.

    ``dynamodb(region, role_arn)`` gives the client of a region; a call addressed to ``None`` goes to
    ``local_region``. Items cross between event form and SDK form here, once each way (core/wire.py);
    failures are retried (``attempts`` in all) and classified (core/errors.py).
    """

    def __init__(
        self,
        dynamodb: Callable[[str, str | None], Any],
        local_region: str,
        names: AttributeNames,
        attempts: int = defaults.WRITE_ATTEMPTS,
        base_delay_ms: int = defaults.RETRY_BASE_DELAY_MS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dynamodb = dynamodb
        self._local_region = local_region
        self._names = names
        self._attempts, self._base_delay_ms, self._sleep = attempts, base_delay_ms, sleep

    def _client(self, target: Target | None) -> Any:
        if target is None:
            return self._dynamodb(self._local_region, None)
        return self._dynamodb(target.region, target.role_arn)

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
        """The protocol's conditional put of ``item`` (event form) at ``version``.

        ``return_replaced``: an applied put's answer carries the item it replaced (ALL_OLD, for the
        conflict rule); ``return_stored``: a stale one's carries the stored item that won.
        """
        client = self._client(target)
        request = guarded_put(table, item, version, self._names, return_replaced=return_replaced)
        if return_stored:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        answer = with_retries(
            lambda: client.put_item(**request), self._attempts, self._base_delay_ms, self._sleep
        )
        if answer.kind is None:
            replaced = answer.response.get("Attributes") if return_replaced else None
            return WriteResult(None, answer.retries, replaced=from_sdk(replaced) if replaced else None)
        failed = answer.response if isinstance(answer.response, dict) else {}
        stored = failed.get("Item") if return_stored else None
        return WriteResult(
            answer.kind, answer.retries, answer.error, stored=from_sdk(stored) if stored else None
        )

    def get_item(
        self, target: Target | None, table: str, key: WireItem, *, consistent: bool
    ) -> WireItem | None:
        """The stored item of ``key`` (event form), or None; raises ReadFailed after the retries."""
        client = self._client(target)
        request = {"TableName": table, "Key": to_sdk(key), "ConsistentRead": consistent}
        answer = with_retries(
            lambda: client.get_item(**request), self._attempts, self._base_delay_ms, self._sleep
        )
        if answer.kind is not None:
            raise ReadFailed(answer.kind, answer.error)
        stored = answer.response.get("Item")
        return from_sdk(stored) if stored else None


class AwsPorts(DynamoPorts):
    """The replicator's I/O in AWS (or against local endpoints when REP_ENDPOINT_URLS is set)."""

    def __init__(
        self,
        settings: Settings,
        session: boto3.session.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            self.dynamodb,
            settings.local_region,
            settings.names,
            settings.write_attempts,
            settings.retry_base_delay_ms,
            sleep,
        )
        self._settings = settings
        self._session = session or boto3.session.Session()
        # One factory for every client: an assumed role's credentials refresh before they expire.
        self._clients = ClientFactory(
            self._session,
            client_config(FUNCTION_CLIENTS, max_pool_connections=max(10, settings.max_workers)),
            endpoint_urls=settings.endpoint_urls,
        )

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        return self._clients.client(service, region, role_arn)

    def dynamodb(self, region: str, role_arn: str | None = None) -> Any:
        return self.client("dynamodb", region, role_arn)

    # --- handoff (one SQS queue per target, in the local region) ---------------------------------

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None:
        if not target.handoff_queue_url:
            raise RuntimeError(f"no handoff queue configured for target {target.region}")
        body = json.dumps({"v": 1, "reason": reason, "handed_off_at": time.time(), "write": write.to_json()})
        if len(body.encode()) > MAX_INLINE_MESSAGE_BYTES:
            key = f"{self._settings.handoff_prefix()}{target.region}/{uuid.uuid4()}.json"
            self.client("s3", self._settings.local_region).put_object(
                Bucket=self._settings.dead_letter_bucket, Key=key, Body=body.encode()
            )
            body = json.dumps({"v": 1, "s3": {"bucket": self._settings.dead_letter_bucket, "key": key}})
        self.client("sqs", self._settings.local_region).send_message(
            QueueUrl=target.handoff_queue_url, MessageBody=body
        )

    def postpone_handoff(self, target: Target, receipt_handle: str, seconds: int) -> bool:
        """Hide a received handoff message for ``seconds``; False if SQS did not take it."""
        try:
            self.client("sqs", self._settings.local_region).change_message_visibility(
                QueueUrl=target.handoff_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError):
            return False
        return True

    def load_handoff(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """The handoff message's content (``message``: its parsed body), following an S3 pointer."""
        doc = message
        pointer = doc.get("s3")
        if pointer:
            obj = self.client("s3", self._settings.local_region).get_object(
                Bucket=pointer["bucket"], Key=pointer["key"]
            )
            doc = json.loads(obj["Body"].read())
        return doc

    # --- dead-letter store (S3, local region) -----------------------------------------------------

    def dead_letter(self, entry: Mapping[str, Any]) -> str:
        day = time.strftime("%Y/%m/%d", time.gmtime())
        name = entry.get("sequence_number") or uuid.uuid4().hex
        target = entry.get("target_region") or "source"
        prefix = f"{self._settings.dead_letter_prefix()}{self._settings.local_region}/{day}"
        key = f"{prefix}/{name}-{target}-{uuid.uuid4().hex[:8]}.json"
        self.client("s3", self._settings.local_region).put_object(
            Bucket=self._settings.dead_letter_bucket,
            Key=key,
            Body=json.dumps(entry, default=str).encode(),
            ContentType="application/json",
        )
        return key

    # --- conflict log (S3, local region, beside the dead letters) --------------------------------------

    def log_conflicts(self, entries: Sequence[Mapping[str, Any]]) -> str:
        """One object for one invocation's lost conflicts; the key sorts by time (see conflict_log_key)."""
        now = time.time()
        key = conflict_log_key(
            self._settings.local_region, now, uuid.uuid4().hex[:8], self._settings.object_key_table
        )
        body = {"v": 1, "source_region": self._settings.local_region, "logged_at": now, "entries": entries}
        self.client("s3", self._settings.local_region).put_object(
            Bucket=self._settings.dead_letter_bucket,
            Key=key,
            Body=json.dumps(body, default=str).encode(),
            ContentType="application/json",
        )
        return key


def conflict_log_key(region: str, at: float, suffix: str, table: str | None = None) -> str:
    """``conflicts/<region>/YYYY/MM/DD/HH/<epoch ms>-<suffix>.json``: listable by hour, sortable by time
    (``conflicts/tables/<table>/<region>/...`` for the 2nd+ tables of a deployment)."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(at))
    prefix = defaults.object_prefix(defaults.CONFLICT_PREFIX, table)
    return f"{prefix}{region}/{hour}/{int(at * 1000):013d}-{suffix}.json"
