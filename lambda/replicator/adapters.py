"""boto3 behind the small surfaces the replicator needs: clients per region, handoff, dead letters,
the conflict log."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from replicator.client_factory import ClientFactory
from replicator.core import defaults
from replicator.core.plan import TargetWrite
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


class AwsPorts:
    """The replicator's I/O in AWS (or against local endpoints when REP_ENDPOINT_URLS is set)."""

    def __init__(self, settings: Settings, session: boto3.session.Session | None = None) -> None:
        self._settings = settings
        self._session = session or boto3.session.Session()
        # Retries are the replicator's own (counted, bounded, with handoff after the last one).
        self._config = Config(
            retries={"total_max_attempts": 1},
            max_pool_connections=max(10, settings.max_workers),
            connect_timeout=2,
            read_timeout=5,
        )
        # One factory for every client: an assumed role's credentials refresh before they expire.
        self._clients = ClientFactory(self._session, self._config, endpoint_urls=settings.endpoint_urls)

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        return self._clients.client(service, region, role_arn)

    def dynamodb(self, region: str, role_arn: str | None = None) -> Any:
        return self.client("dynamodb", region, role_arn)

    def target_dynamodb(self, target: Target) -> Any:
        return self.dynamodb(target.region, target.role_arn)

    def local_dynamodb(self) -> Any:
        return self.dynamodb(self._settings.local_region)

    # --- handoff (one SQS queue per target, in the local region) ---------------------------------

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None:
        if not target.handoff_queue_url:
            raise RuntimeError(f"no handoff queue configured for target {target.region}")
        body = json.dumps({"v": 1, "reason": reason, "handed_off_at": time.time(), "write": write.to_json()})
        if len(body.encode()) > MAX_INLINE_MESSAGE_BYTES:
            key = f"{defaults.HANDOFF_PREFIX}{target.region}/{uuid.uuid4()}.json"
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
        prefix = f"{defaults.DEAD_LETTER_PREFIX}{self._settings.local_region}/{day}"
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
        key = conflict_log_key(self._settings.local_region, now, uuid.uuid4().hex[:8])
        body = {"v": 1, "source_region": self._settings.local_region, "logged_at": now, "entries": entries}
        self.client("s3", self._settings.local_region).put_object(
            Bucket=self._settings.dead_letter_bucket,
            Key=key,
            Body=json.dumps(body, default=str).encode(),
            ContentType="application/json",
        )
        return key


def conflict_log_key(region: str, at: float, suffix: str) -> str:
    """``conflicts/<region>/YYYY/MM/DD/HH/<epoch ms>-<suffix>.json``: listable by hour, sortable by time."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(at))
    return f"{defaults.CONFLICT_PREFIX}{region}/{hour}/{int(at * 1000):013d}-{suffix}.json"
