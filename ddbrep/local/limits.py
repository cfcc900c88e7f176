"""The service limits the stand-ins enforce where the local engine does not, and how AWS measures them.

Pure: no I/O. docs/LOCAL.md ("What the stand-in enforces") lists each limit with its test.
"""

from __future__ import annotations

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)

# DynamoDB's item size rule is the protocol's own (the replicator refuses oversize items before sending
# them): one definition, in the function's core.
from replicator.core.wire import MAX_ITEM_BYTES as MAX_ITEM_BYTES
from replicator.core.wire import item_size_bytes as item_size_bytes

# DynamoDB: an item is at most 400 KB, attribute names included (KB = 1024 bytes: 409,600).
ITEM_TOO_LARGE_MESSAGE = "Item size has exceeded the maximum allowed size"
# Lambda: a synchronous invocation's request payload is at most 6 MB ("Request must be smaller than
# 6291456 bytes for the InvokeFunction operation").
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
# SQS: 256 KiB per message in most tooling and in AWS until 2025; AWS accepts 1 MiB since then.
SQS_MESSAGE_BYTES_STRICT = 256 * 1024
SQS_MESSAGE_BYTES_AWS = 1024 * 1024
