"""The protocol's defaults, defined once: the function, the client helper, the tools and the stacks use these.

The stacks (``stacks/defaults.py``) re-export them for ``cdk.json``; the function's settings fall back
to them when a variable is unset; the client helper and the operator tools take them as their defaults.
An infra test checks that every writer of tombstones agrees.
"""

from __future__ import annotations

DAY_SECONDS = 24 * 3600

# Item metadata: the prefix of the attribute names (``rep_region``, ``rep_ts``, ...).
ATTRIBUTE_PREFIX = "rep_"

# How long a write can still be on its way: in the stream (24 h) or parked in a handoff queue (SQS's
# maximum retention, 14 days).
STREAM_RETENTION_DAYS = 1
HANDOFF_RETENTION_DAYS = 14

# A tombstone must outlive every write that can still arrive for its key; otherwise a replayed older
# write, finding no tombstone, would bring a deleted item back. 16 > 14 + 1.
TOMBSTONE_RETENTION_DAYS = 16
TOMBSTONE_RETENTION_SECONDS = TOMBSTONE_RETENTION_DAYS * DAY_SECONDS

# A version more than this far ahead of the receiving clock is refused (dead-lettered): accepted, it
# would beat every later write of its key until the clocks caught up. Hosts synchronized by NTP
# (Amazon Time Sync) are within milliseconds; five minutes leaves room for a bad host to be noticed
# (alarm on FutureVersionsRejected) without refusing honest writes.
MAX_CLOCK_SKEW_SECONDS = 300

# Target writes: attempts per write (then handoff) and the first backoff delay (doubled, full jitter).
WRITE_ATTEMPTS = 4
RETRY_BASE_DELAY_MS = 50

# Prefixes in the dead-letter bucket: dead letters, handoff payloads too large for a message, and the
# documents Lambda writes for a stream batch it gave up on (the mapping's on-failure destination).
DEAD_LETTER_PREFIX = "dead-letters/"
HANDOFF_PREFIX = "handoff/"
ON_FAILURE_PREFIX = "aws/lambda/"
# Lost conflicts (core/conflicts.py): one JSON object per invocation that found any, kept as long as
# dead letters (it may hold losing items' images), and at most this many entries per object: a storm
# of conflicts costs one S3 PUT per invocation, the rest are only counted (ConflictsNotLogged).
CONFLICT_PREFIX = "conflicts/"
CONFLICT_LOG_MAX_RECORDS = 10
# The 2nd+ tables of a deployment share its region's bucket with the first: their objects go one level
# down, <prefix>tables/<table>/, which no region code (the first level of the first table's keys) equals.
TABLE_OBJECTS = "tables/"


def object_prefix(prefix: str, table: str | None) -> str:
    """Where a table's objects of one kind (``prefix``: dead letters, handoff payloads, conflicts) start:
    ``prefix`` itself for the first (or only) table of a deployment, ``<prefix>tables/<table>/`` for
    the others (settings.REP_OBJECT_KEY_TABLE)."""
    return f"{prefix}{TABLE_OBJECTS}{table}/" if table else prefix


# How long dead letters and discarded-batch documents are kept. Each holds a full item, so not for
# ever; longer than the tombstone retention, because an entry older than that is unsafe to redrive
# anyway (it could bring back an item deleted since), and the operator needs the time to act.
DEAD_LETTER_RETENTION_DAYS = 30
