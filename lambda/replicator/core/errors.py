"""How the replicator treats each kind of failure of a write (docs/DESIGN.md, The replicator function)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from replicator.core.metadata import WireItem


class ErrorKind(StrEnum):
    STALE = "stale"  # the target already holds a newer or equal version: success
    RETRYABLE = "retryable"  # throttling, 5xx, network: retry with backoff, then hand off
    CONFIGURATION = "configuration"  # missing table, access denied: hand off and alarm, never drop
    PERMANENT = "permanent"  # the write itself is invalid: dead-letter store with the reason


_STALE = {"ConditionalCheckFailedException"}
_RETRYABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
}
_CONFIGURATION = {
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationTokenException",
    "IncompleteSignature",
}
_PERMANENT = {
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationException",
    "ParamValidationError",  # botocore's client-side validation: the request can never be sent
    "ItemTooLarge",  # the item with its metadata exceeds DynamoDB's 400 KB (checked before sending)
}


def classify_error(code: str | None, http_status: int | None = None) -> ErrorKind:
    """The kind of a failed write from its error code (None: a network failure, no answer)."""
    if code in _STALE:
        return ErrorKind.STALE
    if code in _PERMANENT:
        return ErrorKind.PERMANENT
    if code in _CONFIGURATION:
        return ErrorKind.CONFIGURATION
    if code in _RETRYABLE or code is None:
        return ErrorKind.RETRYABLE
    if http_status is not None and http_status >= 500:
        return ErrorKind.RETRYABLE
    if http_status in (401, 403):
        return ErrorKind.CONFIGURATION
    # An unknown 4xx: retrying will not help, and dropping is not allowed.
    return ErrorKind.CONFIGURATION


@dataclass(slots=True)
class WriteResult:
    """The answer to one conditional put, classified (the ports retry and classify; the engine decides)."""

    kind: ErrorKind | None  # None: applied
    retries: int = 0
    error: str = ""
    replaced: WireItem | None = None  # applied, asked with return_replaced: the item it replaced (event form)
    stored: WireItem | None = None  # stale, asked with return_stored: the stored item that won (event form)


class ReadFailed(Exception):
    """A read the ports could not make, after their retries (``kind`` as for a write)."""

    def __init__(self, kind: ErrorKind, error: str) -> None:
        super().__init__(error)
        self.kind = kind
        self.error = error
