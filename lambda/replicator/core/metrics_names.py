"""The metric names and dimensions the functions emit (EMF). The dashboard and alarms use these.

Per region pair (dimensions ``SourceRegion``, ``TargetRegion``): ReplicationLatency (Milliseconds, one
value per write applied to the target, by the replicator or by the drain), StaleSkipped,
TombstonesWritten, HandedOff, HandoffReplayed, HandoffReplayFailed, DeadLettered, TargetWriteRetries,
FilteredOut (a change the target's item filter excludes, sent as a tombstone), HandoffFailed,
ConflictsLost (an applied write overwrote a concurrent write of the target region: core/conflicts.py;
one of the RecordsReplicated or HandoffReplayed writes, not another outcome), ConflictsNotLogged (of
those, the ones past the conflict log's per-invocation bound, or whose log object could not be written:
counted only).
Per source (dimension ``SourceRegion``): EchoSkipped, TtlSkipped, TombstoneExpirySkipped,
NoChangeSkipped, RecordsAdopted, LocalTombstonesWritten, MalformedRecords, RecordsReceived,
LocalWriteSuperseded (an adoption or local tombstone found the item already changed again),
LocalWriteRejected (dead-lettered), LocalWriteFailed (reported to Lambda for a retry), RecordsCoalesced
(superseded within the batch by a newer change of the same key), FutureVersionsRejected (a local
write stamped beyond now + the maximum clock skew: dead-lettered, its region's clock runs ahead).
HandoffFailed (per pair): a write could be neither applied nor handed off; Lambda retries the key.
DeadLettered is per pair for a target's write, and per source for a record of the source's own
(malformed, or an adoption / local tombstone the local table rejected).

Every record of a batch ends in exactly one of these (invariant 4, checked by the model tests).
No ``service`` dimension is emitted.

RecordsReplicated (the replicator's writes applied to a target) is counted by the engine but not
emitted: it is the SampleCount of the pair's ReplicationLatency (one value per applied write) less the
pair's HandoffReplayed (the drain's applied writes, which also report their latency). CloudWatch bills a
custom metric for the hours it receives data, and that count was one of the few always-on ones: a
metric for every pair all month. The others are emitted only when non-zero (failures, conflicts, dead
letters, stale writes) and cost next to nothing in a healthy month.
"""

from collections.abc import Mapping

SOURCE_REGION = "SourceRegion"
TARGET_REGION = "TargetRegion"

REPLICATION_LATENCY = "ReplicationLatency"
RECORDS_REPLICATED = "RecordsReplicated"
STALE_SKIPPED = "StaleSkipped"
TOMBSTONES_WRITTEN = "TombstonesWritten"
HANDED_OFF = "HandedOff"
HANDOFF_REPLAYED = "HandoffReplayed"
HANDOFF_REPLAY_FAILED = "HandoffReplayFailed"
HANDOFF_FAILED = "HandoffFailed"
DEAD_LETTERED = "DeadLettered"
TARGET_WRITE_RETRIES = "TargetWriteRetries"
FILTERED_OUT = "FilteredOut"
CONFLICTS_LOST = "ConflictsLost"
CONFLICTS_NOT_LOGGED = "ConflictsNotLogged"

# Counted per pair, not emitted: derived from ReplicationLatency's SampleCount (see above).
DERIVED_PAIR_COUNTS = frozenset({RECORDS_REPLICATED})
# What the functions emit per pair.
PAIR_METRICS = (
    REPLICATION_LATENCY,
    STALE_SKIPPED,
    TOMBSTONES_WRITTEN,
    HANDED_OFF,
    HANDOFF_REPLAYED,
    HANDOFF_REPLAY_FAILED,
    HANDOFF_FAILED,
    DEAD_LETTERED,
    TARGET_WRITE_RETRIES,
    FILTERED_OUT,
    CONFLICTS_LOST,
    CONFLICTS_NOT_LOGGED,
)

ECHO_SKIPPED = "EchoSkipped"
TTL_SKIPPED = "TtlSkipped"
TOMBSTONE_EXPIRY_SKIPPED = "TombstoneExpirySkipped"
NO_CHANGE_SKIPPED = "NoChangeSkipped"
RECORDS_ADOPTED = "RecordsAdopted"
LOCAL_TOMBSTONES_WRITTEN = "LocalTombstonesWritten"
MALFORMED_RECORDS = "MalformedRecords"
RECORDS_RECEIVED = "RecordsReceived"
LOCAL_WRITE_SUPERSEDED = "LocalWriteSuperseded"
LOCAL_WRITE_REJECTED = "LocalWriteRejected"
LOCAL_WRITE_FAILED = "LocalWriteFailed"
RECORDS_COALESCED = "RecordsCoalesced"
FUTURE_VERSIONS_REJECTED = "FutureVersionsRejected"

SOURCE_METRICS = (
    ECHO_SKIPPED,
    TTL_SKIPPED,
    TOMBSTONE_EXPIRY_SKIPPED,
    NO_CHANGE_SKIPPED,
    RECORDS_ADOPTED,
    LOCAL_TOMBSTONES_WRITTEN,
    MALFORMED_RECORDS,
    RECORDS_RECEIVED,
    LOCAL_WRITE_SUPERSEDED,
    LOCAL_WRITE_REJECTED,
    DEAD_LETTERED,
    LOCAL_WRITE_FAILED,
    RECORDS_COALESCED,
    FUTURE_VERSIONS_REJECTED,
)


# Emitted by every invocation that applies or receives anything: in a healthy month these are the
# metrics billed every hour (the cost model counts them: ddbrep/tools/cost.py). Every other metric is
# emitted only when non-zero.
ALWAYS_ON_PAIR_METRICS = (REPLICATION_LATENCY,)
ALWAYS_ON_SOURCE_METRICS = (RECORDS_RECEIVED,)

# With function.metrics_flush_seconds, an invocation reporting any of these prints its environment's
# buffered metrics at once (replicator/emf.py MetricsBuffer): the failures, conflicts and dead letters
# the alarms and the runbook watch are never delayed.
FLUSH_AT_ONCE = frozenset(
    {
        DEAD_LETTERED,
        HANDOFF_FAILED,
        HANDED_OFF,
        CONFLICTS_LOST,
        CONFLICTS_NOT_LOGGED,
        FUTURE_VERSIONS_REJECTED,
        MALFORMED_RECORDS,
        LOCAL_WRITE_REJECTED,
        LOCAL_WRITE_FAILED,
    }
)


def emitted_pair_counts(counts: Mapping[str, float]) -> dict[str, float]:
    """A pair's counts as emitted: without the ones ReplicationLatency's SampleCount gives."""
    return {name: value for name, value in counts.items() if name not in DERIVED_PAIR_COUNTS}
